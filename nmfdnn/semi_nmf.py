"""Semi-NMF (eq. 4): ``min_{W, Z >= 0} ||Y - W Z||_F`` for the output layer (Sec. 3.1).

The solver alternates the two updates of Ding, Li and Jordan (2010), the paper's ref. [3]:
``W`` by exact least squares, ``W = Y Z^dagger``, then one multiplicative update of ``Z >= 0``.
"""

from __future__ import annotations

from .linalg import right_pinv
from .network import affine, augment


def semi_nmf_objective(bk, Y, W, Z, bias: bool = False):
    """``1/2 ||Y - W [Z; e^T]||_F^2`` (``[Z; e^T]`` only with a bias column)."""
    R = Y - affine(W, Z, bias)
    return 0.5 * bk.scalar((R * R).sum())


def update_w(bk, Y, Z, rcond: float, pinv: str, bias: bool = False):
    """``W = Y Z^dagger``: the least-squares update of the unconstrained factor (Ding et al., eq. 9)."""
    A = augment(bk, Z, bias)
    return right_pinv(bk, A, rcond, pinv).apply(Y)


def update_z(bk, Y, W, Z, bias: bool = False):
    """One multiplicative update of ``Z >= 0`` (Ding, Li and Jordan 2010, eq. 10).

    ``Z <- Z * sqrt(([W^T Y]^+ + [W^T W]^- Z) / ([W^T Y]^- + [W^T W]^+ Z))`` with
    ``A^+ = (|A| + A)/2`` and ``A^- = (|A| - A)/2``. It never increases ``||Y - W Z||_F`` and keeps
    ``Z >= 0``. With a bias column ``b``, ``Y - b e^T`` replaces ``Y`` (the ones row is fixed).
    Numerator and denominator are built from nonnegative parts, the denominator is floored at the
    smallest normal number and the ratio capped at 1/eps, so float32 cannot produce negative,
    infinite or NaN factors.
    """
    xp = bk.xp
    if bias:
        Y = Y - W[:, -1:]
        W = W[:, :-1]
    WtY = W.T @ Y
    WtW = W.T @ W
    WtY_neg = xp.abs(WtY)
    WtY_neg -= WtY
    WtY_neg *= 0.5  # [W^T Y]^-
    WtY += WtY_neg  # [W^T Y]^+ = W^T Y + [W^T Y]^-
    WtW_neg = xp.abs(WtW)
    WtW_neg -= WtW
    WtW_neg *= 0.5
    WtW += WtW_neg
    num = WtW_neg @ Z
    num += WtY
    den = WtW @ Z
    den += WtY_neg
    tiny = xp.finfo(Z.dtype).tiny
    xp.maximum(den, tiny, out=den)
    num /= den
    # den vanishes only where Z_kj = 0 (the diagonal of [W^T W]^+ is ||w_k||^2); capping the ratio
    # at 1/eps keeps 0 * sqrt(ratio) = 0 there instead of 0 * inf = NaN.
    xp.minimum(num, 1.0 / xp.finfo(Z.dtype).eps, out=num)
    xp.sqrt(num, out=num)
    num *= Z
    return num


def semi_nmf(bk, Y, W0, Z0, iters: int, rcond: float, pinv: str = "gram", bias: bool = False):
    """Solve (approx.) semi-NMF (4) from the initial guesses ``W_d^{(k-1)}, Z_{d-1}^{(k-1)}``.

    Each of ``iters`` iterations sets ``W = Y Z^dagger`` and then applies one multiplicative update
    to ``Z`` (Alg. 4, line 3). Returns ``(W_d^{(k)}, Z_hat_{d-1}^{(k)})``. With ``iters = 0`` the
    initial guesses come back unchanged.
    """
    W, Z = W0, Z0
    for _ in range(iters):
        W = update_w(bk, Y, Z, rcond, pinv, bias)
        Z = update_z(bk, Y, W, Z, bias)
    return W, Z
