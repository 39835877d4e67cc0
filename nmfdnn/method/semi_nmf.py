"""Semi-NMF (eq. 4): ``min_{W, Z >= 0} ||Y - W Z||_F`` for the output layer (Sec. 3.1).

The solver alternates the two updates of Ding, Li and Jordan (2010), the paper's ref. [3]:
``W`` by exact least squares, ``W = Y Z^dagger``, then one multiplicative update of ``Z >= 0``.
"""

from __future__ import annotations

from .activations import RELU
from .kernels import semi_nmf_ratio_, soft_threshold_
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


def update_z(bk, Y, W, Z, bias: bool = False, beta: float = 0.0, l1: float = 0.0):
    """One multiplicative update of ``Z >= 0`` (Ding, Li and Jordan 2010, eq. 10).

    ``Z <- Z * sqrt(([W^T Y]^+ + [W^T W]^- Z) / ([W^T Y]^- + [W^T W]^+ Z))`` with
    ``A^+ = (|A| + A)/2`` and ``A^- = (|A| - A)/2``. It never increases ``||Y - W Z||_F`` and keeps
    ``Z >= 0``. With a bias column ``b``, ``Y - b e^T`` replaces ``Y`` (the ones row is fixed).
    Numerator and denominator are built from nonnegative parts, the denominator is floored at the
    smallest normal number and the ratio capped at 1/eps, so float32 cannot produce negative,
    infinite or NaN factors (den vanishes only where ``Z_kj = 0``: the diagonal of ``[W^T W]^+`` is
    ``||w_k||^2``; the cap keeps ``0 * sqrt(ratio) = 0`` there instead of ``0 * inf = NaN``).
    The element-wise formula is one fused pass (:func:`nmfdnn.method.kernels.semi_nmf_ratio_`);
    ``beta > 0`` adds ``beta Z`` to its numerator and denominator (a damped, regularised update);
    ``l1 > 0`` adds ``l1`` to the denominator (``l1 ||Z||_1`` in (4): :mod:`nmfdnn.method.sparse`).
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
    return semi_nmf_ratio_(bk, Z, absZ, low, WtY, beta, l1)


def update_z_unconstrained(bk, Y, W, Z, rcond: float, pinv: str, bias: bool = False):
    """The Z update of (4) without ``Z >= 0`` (an activation whose range is all of R, leaky_relu):
    the least-squares step that moves ``Z`` least, ``Z + W^dagger (Y - W [Z; e^T])`` -- Algorithm 3's
    line 4 with ``f`` the identity and ``omega = 1`` (:mod:`nmfdnn.method.activations`)."""
    from .linalg import left_pinv

    W0 = W[:, :-1] if bias else W
    return Z + left_pinv(bk, W0, rcond, pinv, 0.0) @ (Y - affine(W, Z, bias))


def update_w_memory(bk, Y, W, Z, rcond: float, memory, bias: bool = False, commit: bool = True):
    """The W update with memory across batches (:mod:`nmfdnn.method.memory`): the step
    ``W + (Y - W [Z; e^T]) [Z; e^T]^T G_k^-1`` with the running Gram matrix ``G_k``."""
    A = augment(bk, Z, bias)
    return W + memory.right_pinv(bk, A, "semi", rcond, commit).apply(Y - affine(W, Z, bias))


def semi_nmf(bk, Y, W0, Z0, iters: int, rcond: float, pinv: str, bias: bool = False, alpha: float = 0.0,
             beta: float = 0.0, act=RELU, l1: float = 0.0, memory=None):
    """Solve (approx.) semi-NMF (4) from the initial guesses ``W_d^{(k-1)}, Z_{d-1}^{(k-1)}``.

    Each of ``iters`` iterations sets ``W = Y Z^dagger`` and then applies one multiplicative update
    to ``Z`` (Alg. 4, line 3). Returns ``(W_d^{(k)}, Z_hat_{d-1}^{(k)})``. With ``iters = 0`` the
    initial guesses come back unchanged. ``alpha`` and ``beta`` regularise the two updates (0: the paper).
    ``act``: the hidden activation -- ``Z`` is kept in its range: the multiplicative update
    for ``Z >= 0``, clipped for capped_relu, the unconstrained step for leaky_relu; ``l1``: ``l1 ||Z||_1``
    (:mod:`nmfdnn.method.sparse`; with leaky_relu the step is soft-thresholded). ``memory``: a
    :class:`~nmfdnn.method.memory.GramMemory` whose running Gram matrix the W update uses (its last
    round's is kept).
    """
    W, Z = W0, Z0
    for t in range(iters):
        if memory is not None:
            W = update_w_memory(bk, Y, W, Z, rcond, memory, bias, commit=t == iters - 1)
        else:
            W = update_w(bk, Y, Z, rcond, pinv, bias, alpha)
        if act.nonnegative:
            Z = act.bound(bk, update_z(bk, Y, W, Z, bias, beta, l1))
        else:
            Z = update_z_unconstrained(bk, Y, W, Z, rcond, pinv, bias)
            if l1:
                soft_threshold_(bk, Z, l1)
    return W, Z
