"""Semi-NMF (eq. 4): ``min_{W, Z >= 0} ||Y - W Z||_F`` for the output layer (Sec. 3.1).

The solver alternates the two updates of Ding, Li and Jordan (2010), the paper's ref. [3]:
``W`` by exact least squares, ``W = Y Z^dagger``, then one multiplicative update of ``Z >= 0``.
"""

from __future__ import annotations

from .kernels import semi_nmf_ratio_
from .linalg import right_pinv
from .network import affine, augment


def semi_nmf_objective(bk, Y, W, Z, bias: bool = False):
    """``1/2 ||Y - W [Z; e^T]||_F^2`` (``[Z; e^T]`` only with a bias column)."""
    R = Y - affine(W, Z, bias)
    return 0.5 * bk.total(bk.scalar((R * R).sum()))


def update_w(bk, Y, Z, rcond: float, pinv: str, bias: bool = False, alpha: float = 0.0):
    """``W = Y Z^dagger``: the least-squares update of the unconstrained factor (Ding et al., eq. 9);
    with ``alpha > 0`` the ridge solution ``Y Z^T (Z Z^T + alpha I)^-1`` (:func:`nmfdnn.method.linalg.ridge_right_pinv`)."""
    return right_pinv(bk, augment(bk, Z, bias), rcond, pinv, alpha, bias).apply(Y)


def update_z(bk, Y, W, Z, bias: bool = False, beta: float = 0.0):
    """One multiplicative update of ``Z >= 0`` (Ding, Li and Jordan 2010, eq. 10).

    ``Z <- Z * sqrt(([W^T Y]^+ + [W^T W]^- Z) / ([W^T Y]^- + [W^T W]^+ Z))`` with
    ``A^+ = (|A| + A)/2`` and ``A^- = (|A| - A)/2``. It never increases ``||Y - W Z||_F`` and keeps
    ``Z >= 0``. With a bias column ``b``, ``Y - b e^T`` replaces ``Y`` (the ones row is fixed).
    Numerator and denominator are built from nonnegative parts, the denominator is floored at the
    smallest normal number and the ratio capped at 1/eps, so float32 cannot produce negative,
    infinite or NaN factors (den vanishes only where ``Z_kj = 0``: the diagonal of ``[W^T W]^+`` is
    ``||w_k||^2``; the cap keeps ``0 * sqrt(ratio) = 0`` there instead of ``0 * inf = NaN``).
    The element-wise formula is one fused pass (:func:`nmfdnn.method.kernels.semi_nmf_ratio_`);
    ``beta > 0`` adds ``beta Z`` to its numerator and denominator (a damped, regularised update).
    """
    xp = bk.xp
    if bias:
        Y = Y - W[:, -1:]
        W = W[:, :-1]
    q, p = W.shape
    WtY = W.T @ Y
    WtW = W.T @ W
    absZ = xp.abs(WtW) @ Z
    # W^T W has rank q (10 classes) while Z has p rows: [W^T W]^+- Z = (|W^T W| Z +- W^T W Z) / 2
    # with W^T (W Z), 4 q p m operations, instead of a second p x p product, 2 p^2 m.
    low = W.T @ (W @ Z) if 2 * q < p else WtW @ Z
    return semi_nmf_ratio_(bk, Z, absZ, low, WtY, beta)


def semi_nmf(bk, Y, W0, Z0, iters: int, rcond: float, pinv: str, bias: bool = False, alpha: float = 0.0,
             beta: float = 0.0):
    """Solve (approx.) semi-NMF (4) from the initial guesses ``W_d^{(k-1)}, Z_{d-1}^{(k-1)}``.

    Each of ``iters`` iterations sets ``W = Y Z^dagger`` and then applies one multiplicative update
    to ``Z`` (Alg. 4, line 3). Returns ``(W_d^{(k)}, Z_hat_{d-1}^{(k)})``. With ``iters = 0`` the
    initial guesses come back unchanged. ``alpha`` and ``beta`` regularise the two updates (0: the paper).
    """
    W, Z = W0, Z0
    for _ in range(iters):
        W = update_w(bk, Y, Z, rcond, pinv, bias, alpha)
        Z = update_z(bk, Y, W, Z, bias, beta)
    return W, Z
