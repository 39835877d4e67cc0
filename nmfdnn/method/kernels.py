"""In-place element-wise kernels of the method (ReLU residuals, projected steps, the semi-NMF ratio).

Element-wise work on the ``n_i x m`` batch matrices is memory-bound: each ufunc is one pass over
tens of megabytes. These kernels write into a buffer the caller owns (no temporaries of batch
size) and use as few passes as the formula allows. A fused, multi-threaded evaluator (numexpr) was
measured on the 2-core development machine and was not faster: ``B - max(U, 0)`` on 1000 x 5000
float64 took 23 ms with two numexpr threads against 21 ms for two NumPy passes (README, speed); nor
for the dozen passes of :func:`semi_nmf_ratio_` (500 x 5000, alone: 23.6 ms fused on two threads against
18.5 ms in NumPy, float64; 30.2 against 7.7 ms, float32; numexpr 2.14, 2026-12-02).
"""

from __future__ import annotations

import numpy as np

from .activations import RELU


def residual_relu_(bk, B, U, out=None, act=RELU):
    """``U <- B - f(U)`` in place: line 3 of Algorithms 2 and 3 (``U = X_s A`` or ``A X_s``); with
    ``out``, ``out <- B - f(U)`` and ``U`` is kept (two passes, where a copy first would be three).
    ``act``: ``f`` (:mod:`nmfdnn.method.activations`; the paper's ReLU by default)."""
    out = U if out is None else out
    act.apply(bk, U, out=out)
    return bk.xp.subtract(B, out, out=out)


def add_relu_(bk, X, S, act=RELU, threshold: float = 0.0):
    """``S <- proj(X + S)`` in place: line 4 of Algorithm 3 (``S = omega A^dagger R_s``), the projection
    onto ``act``'s range (:meth:`Activation.project`; for ReLU ``f`` itself); returns ``S``. With
    ``threshold > 0`` the soft threshold before it, the proximal step of an L1 penalty
    (:func:`soft_threshold_`)."""
    S += X
    if threshold:
        soft_threshold_(bk, S, threshold)
    return act.project(bk, S, out=S)


def soft_threshold_(bk, V, t: float):
    """``V <- S_t(V) = sign(V) max(|V| - t, 0)`` in place (the proximal map of ``t ||.||_1``, :mod:`nmfdnn.method.sparse`)."""
    xp = bk.xp
    mag = xp.abs(V)
    mag -= t
    xp.maximum(mag, 0, out=mag)
    xp.sign(V, out=V)
    V *= mag
    return V


def semi_nmf_ratio_(bk, Z, absZ, low, WtY, beta: float = 0.0, l1: float = 0.0):
    """The multiplicative update of (Ding, Li and Jordan, eq. 10) from its products, into ``absZ``:

    ``Z * sqrt(min(([W^T Y]^+ + [W^T W]^- Z) / max([W^T Y]^- + [W^T W]^+ Z, tiny), 1/eps))`` with
    ``[W^T W]^+- Z = (|W^T W| Z +- W^T W Z) / 2`` (``absZ``, ``low``) and ``[M]^+- = (|M| +- M) / 2``.
    The numerator is floored at 0 (cancellation in ``absZ - low``), the denominator at the smallest
    normal number and the ratio capped at ``1/eps`` (see :func:`nmfdnn.semi_nmf.update_z`).
    ``absZ``, ``low`` and ``WtY`` are overwritten. ``beta > 0`` adds ``beta Z`` to numerator and
    denominator (the regularised update of Arai, Imakura and Sakurai 2018); ``l1 > 0`` adds ``l1`` to
    the denominator (the gradient of ``l1 sum Z``: :mod:`nmfdnn.method.sparse`).
    """
    xp = bk.xp
    fi = xp.finfo(Z.dtype)
    den = low
    den += absZ
    den *= 0.5  # [W^T W]^+ Z
    num = absZ
    num -= den  # [W^T W]^- Z = |W^T W| Z - [W^T W]^+ Z
    xp.maximum(num, 0, out=num)
    pos = xp.maximum(WtY, 0)  # [W^T Y]^+
    num += pos
    pos -= WtY  # [W^T Y]^- = [W^T Y]^+ - W^T Y
    den += pos
    if beta > 0:
        num += beta * Z
        den += beta * Z
    if l1 > 0:
        den += l1
    xp.maximum(den, fi.tiny, out=den)
    with np.errstate(over="ignore"):  # a ratio over the tiny floor may overflow: clamped on the next line
        num /= den
    xp.minimum(num, 1.0 / fi.eps, out=num)
    xp.sqrt(num, out=num)
    num *= Z
    return num
