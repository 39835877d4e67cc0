"""Nonlinear least squares by the stationary iterations of Algorithms 2 and 3 (Sec. 3.2).

Both solve problems of the nonlinear semi-NMF (6) for a ReLU ``f``: Algorithm 2 updates a weight
matrix (problem (7) and (10)), Algorithm 3 the nonnegative hidden matrix (problem (8)).
The pseudo-inverse of the fixed factor is computed once by the caller (:mod:`nmfdnn.linalg`) and
applied in every iteration. :func:`alg2_right` and :func:`alg3_left` are the paper's two lines each;
:func:`alg2_right_carried` is a cheaper route to the same iterates, chosen explicitly by :func:`alg2`.
"""

from __future__ import annotations

from .activations import RELU
from .kernels import add_relu_, residual_relu_


def nlsq_objective_right(bk, B, X, A, act=RELU):
    """``1/2 ||B - f(X A)||_F^2``, the objective Algorithm 2 decreases (``act``: ``f``)."""
    R = residual_relu_(bk, B, X @ A, act=act)
    return 0.5 * bk.total(bk.scalar((R * R).sum()))


def nlsq_objective_left(bk, B, A, X, offset=None, act=RELU):
    """``1/2 ||B - f(A X + c e^T)||_F^2``, the objective Algorithm 3 decreases."""
    U = A @ X
    if offset is not None:
        U += offset
    R = residual_relu_(bk, B, U, act=act)
    return 0.5 * bk.total(bk.scalar((R * R).sum()))


def alg2_right(bk, B, A, A_pinv, X0, iters: int, omega: float, fx0=None, act=RELU):
    """Algorithm 2: ``min_X ||B - f(X A)||_F`` by ``X_{s+1} = X_s + omega R_s A^dagger``.

    Parameters
    ----------
    B : target (``Z_hat_i``), q x m.
    A : fixed right factor (``Z_{i-1}``, augmented by ``e^T`` with a bias), p x m.
    A_pinv : line 4's ``A^dagger`` of ``A``, an object with ``apply(R) = R A^dagger``
        (:mod:`nmfdnn.method.linalg`).
    X0 : initial guess (``W_i^{(k-1)}``), q x p. Not modified.
    iters : number of iterations ``s`` (the paper's "LSQ iterations").
    omega : step parameter of line 1.
    fx0 : ``f(X0 A)`` when the caller already has it (in Algorithm 4 the forward pass computed it
        with the same weights); then line 3 of the first iteration is ``R_0 = B - fx0``.
    act : ``f`` (:class:`nmfdnn.method.activations.Activation`); ReLU, the paper's, by default.

    With ``f`` the identity and ``A`` of full row rank, one iteration with ``omega = 1`` gives the
    least-squares solution ``B A^dagger`` from any ``X0``.
    """
    xp = bk.xp
    X = X0.copy()
    R = xp.empty(B.shape, dtype=B.dtype)  # line 3's residual, one buffer for every iteration
    for s in range(iters):
        if s == 0 and fx0 is not None:
            xp.subtract(B, fx0, out=R)
        else:
            residual_relu_(bk, B, xp.matmul(X, A, out=R), act=act)  # line 3: R_s = B - f(X_s A)
        if omega == 1.0:
            X += A_pinv.apply(R)  # line 4: X_{s+1} = X_s + omega R_s A^dagger
        else:
            X += omega * A_pinv.apply(R)
    return X


def carries_product(q: int, p: int, r: int, iters: int) -> bool:
    """Whether :func:`alg2_right_carried` is cheaper than :func:`alg2_right` for a rank-``r``
    factored ``A^dagger`` (``X`` is q x p): when the saved ``2 q (p - r) m`` per iteration outweighs
    the extra products ``U^T A`` and ``X_0 A``."""
    return (iters - 1) * q * (p - r) > r * (p + q)


def alg2_right_carried(bk, B, A, A_pinv, X0, iters: int, omega: float, fx0=None, act=RELU):
    """Algorithm 2 as :func:`alg2_right`, for a low-rank ``A^dagger = P S U^T`` (a
    :class:`nmfdnn.method.linalg.RightPinv` with ``pre=None``, e.g. the truncated input SVD of the
    first layer), carrying ``X_s A`` along instead of recomputing it:
    ``X_{s+1} A = X_s A + omega (R_s P S)(U^T A)`` costs ``2 q r m`` instead of ``2 q p m`` per
    iteration. ``X`` itself is not needed inside the loop: line 4's steps all end in ``U^T``, so
    ``X_s = X_0 + (T_0 + ... + T_{s-1}) U^T`` with ``T_s = omega R_s P S`` is formed once, after the
    last iteration (``2 q r p`` once instead of every iteration). The same iterates in exact
    arithmetic; the caller chooses it (:func:`carries_product`).
    """
    xp = bk.xp
    UtA = A_pinv.right @ A  # r x m
    XA = X0 @ A
    R = xp.empty(B.shape, dtype=B.dtype)  # the residual's buffer, reused by every iteration
    T_sum = xp.zeros((X0.shape[0], A_pinv.rank), dtype=X0.dtype)
    for s in range(iters):
        if s == 0 and fx0 is not None:
            xp.subtract(B, fx0, out=R)
        else:
            residual_relu_(bk, B, XA, out=R, act=act)  # line 3 from the carried X_s A
        T = bk.allreduce(R @ A_pinv.left)  # contracts over the columns: the ranks' shares summed
        T *= A_pinv.scale if omega == 1.0 else omega * A_pinv.scale
        T_sum += T
        if s < iters - 1:
            XA += xp.matmul(T, UtA, out=R)  # R is free again: it holds the update of X_s A
    return X0 + T_sum @ A_pinv.right  # line 4, summed over the iterations


def alg2(bk, B, A, A_pinv, X0, iters: int, omega: float, fx0=None, act=RELU):
    """Algorithm 2 by the cheaper of :func:`alg2_right` and :func:`alg2_right_carried`: the carried
    variant when ``A^dagger`` is a low-rank product (``A_pinv.low_rank``) and
    :func:`carries_product` says it saves work. Both compute the same iterates."""
    if A_pinv.low_rank and carries_product(X0.shape[0], A.shape[0], A_pinv.rank, iters):
        return alg2_right_carried(bk, B, A, A_pinv, X0, iters, omega, fx0, act)
    return alg2_right(bk, B, A, A_pinv, X0, iters, omega, fx0, act)


def _norm2(bk, R) -> float:
    """``||R||_F^2`` over all columns (all ranks' shares)."""
    return bk.total(bk.scalar((R * R).sum()))


def _safeguarded(bk, X, R, iters, omega, halvings, direction, trial, residual):
    """The step safeguard shared by :func:`alg2_right_safe` and :func:`alg3_left_safe`: from ``X``
    with residual ``R``, each iteration tries ``trial(X, w * direction(R))`` for ``w = omega,
    omega/2, ...`` (at most ``halvings`` halvings) and accepts the first whose residual norm is
    lower; if none is, it stops with ``X``. The accepted step's residual is the next iteration's
    line 3; only the rejected trials and the last iteration's check cost extra products."""
    r = _norm2(bk, R)
    for _ in range(iters):
        step = direction(R)
        w = omega
        for _ in range(halvings + 1):
            Xn = trial(X, w * step)
            Rn = residual(Xn)
            rn = _norm2(bk, Rn)
            if rn < r:
                break
            w *= 0.5
        else:
            return X  # no step lowers the residual: keep the last accepted iterate
        X, R, r = Xn, Rn, rn
    return X


def alg2_right_safe(bk, B, A, A_pinv, X0, iters: int, omega: float, fx0=None, halvings: int = 8, act=RELU):
    """Algorithm 2 with a step safeguard: line 4's step ``omega R_s A^dagger`` is accepted only if the
    residual norm ``||B - f(X A)||_F`` falls; otherwise omega is halved (at most ``halvings`` times per
    iteration) and, if no step helps, the iteration stops with the last accepted ``X``. At ``omega = 1``
    Algorithm 2 has no descent guarantee (``f`` is not linear); this variant never raises the residual."""
    def residual(X):
        return residual_relu_(bk, B, X @ A, act=act)

    X = X0.copy()
    R = bk.xp.subtract(B, fx0) if fx0 is not None else residual(X)
    return _safeguarded(bk, X, R, iters, omega, halvings, A_pinv.apply, lambda X, S: X + S, residual)


def alg3_left_safe(bk, B, A, A_pinv, X0, iters: int, omega: float, offset=None, halvings: int = 8, act=RELU):
    """Algorithm 3 with the step safeguard of :func:`alg2_right_safe`: ``X_{s+1} = f(X_s + w A^dagger R_s)``
    with ``w`` halved from ``omega`` until the residual norm falls; every iterate stays nonnegative."""
    def residual(X):
        U = A @ X
        if offset is not None:
            U += offset
        return residual_relu_(bk, B, U, act=act)

    X = X0.copy()
    return _safeguarded(bk, X, residual(X), iters, omega, halvings, lambda R: A_pinv @ R,
                        lambda X, S: add_relu_(bk, X, S.copy(), act), residual)


def alg3_left(bk, B, A, A_pinv, X0, iters: int, omega: float, offset=None, act=RELU, l1: float = 0.0):
    """Algorithm 3: ``min_{X >= 0} ||B - f(A X + c e^T)||_F`` by ``X_{s+1} = f(X_s + omega A^dagger R_s)``.

    Parameters
    ----------
    B : target (``Z_hat_i``), q x m.
    A : fixed left factor (``W_i`` without its bias column), q x p.
    A_pinv : dense ``A^dagger``, p x q (:func:`nmfdnn.linalg.left_pinv`).
    X0 : initial guess (``Z_{i-1}`` of the forward pass), p x m, nonnegative. Not modified.
    offset : the bias column ``c`` of ``W_i`` (q x 1) or None; it is constant, not a variable.
    act : ``f`` (:class:`nmfdnn.method.activations.Activation`); ReLU by default. Line 3 uses it,
        line 4 projects onto its range (for ReLU: ``f`` itself).
    l1 : beyond the paper, ``l1 ||X||_1`` added to (8) (``solver.l1_activations``): line 4's step
        is followed by the soft threshold ``omega l1`` before the projection (for ``X >= 0``:
        ``max(X - omega l1, 0)``), the proximal step of the penalty (:mod:`nmfdnn.method.sparse`).

    Every iterate is nonnegative (line 4 applies f = ReLU), so the constraint of (8) holds.
    """
    xp = bk.xp
    # Line 3's residual and two step buffers, allocated once: a new batch-sized array pays its page
    # faults again on every iteration (W 1000 x 1500, Z 1500 x 5000, float64, one thread, beside other
    # work: 1.03-1.10 s an iteration with these buffers, 1.17-1.26 s without, its two products 0.99-1.08 s).
    R = xp.empty(B.shape, dtype=B.dtype)
    steps = (xp.empty(X0.shape, dtype=X0.dtype), xp.empty(X0.shape, dtype=X0.dtype))
    X = X0
    for s in range(iters):
        xp.matmul(A, X, out=R)  # line 3
        if offset is not None:
            R += offset
        residual_relu_(bk, B, R, act=act)
        # line 4: X_{s+1} = f(X_s + omega A^dagger R_s), into the buffer X_s does not occupy
        step = xp.matmul(A_pinv, R, out=steps[s % 2])
        if omega != 1.0:
            step *= omega
        X = add_relu_(bk, X, step, act, omega * l1)  # with l1: soft threshold, then line 4's projection
    return X if iters > 0 else X0.copy()
