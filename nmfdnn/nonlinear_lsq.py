"""Nonlinear least squares by the stationary iterations of Algorithms 2 and 3 (Sec. 3.2).

Both solve problems of the nonlinear semi-NMF (6) for a ReLU ``f``: Algorithm 2 updates a weight
matrix (problem (7) and (10)), Algorithm 3 the nonnegative hidden matrix (problem (8)).
The pseudo-inverse of the fixed factor is computed once by the caller (:mod:`nmfdnn.linalg`) and
applied in every iteration.
"""

from __future__ import annotations


def nlsq_objective_right(bk, B, X, A):
    """``1/2 ||B - f(X A)||_F^2``, the objective Algorithm 2 decreases."""
    R = B - bk.relu(X @ A)
    return 0.5 * bk.scalar((R * R).sum())


def nlsq_objective_left(bk, B, A, X, offset=None):
    """``1/2 ||B - f(A X + c e^T)||_F^2``, the objective Algorithm 3 decreases."""
    U = A @ X
    if offset is not None:
        U += offset
    R = B - bk.relu(U, out=U)
    return 0.5 * bk.scalar((R * R).sum())


def alg2_right(bk, B, A, A_pinv, X0, iters: int, omega: float = 1.0):
    """Algorithm 2: ``min_X ||B - f(X A)||_F`` by ``X_{s+1} = X_s + omega R_s A^dagger``.

    Parameters
    ----------
    B : target (``Z_hat_i``), q x m.
    A : fixed right factor (``Z_{i-1}``, augmented by ``e^T`` with a bias), p x m.
    A_pinv : :class:`nmfdnn.linalg.RightPinv` of ``A`` (line 4's ``A^dagger``).
    X0 : initial guess (``W_i^{(k-1)}``), q x p. Not modified.
    iters : number of iterations ``s`` (the paper's "LSQ iterations").
    omega : step parameter of line 1.

    With ``f`` the identity and ``A`` of full row rank, one iteration with ``omega = 1`` gives the
    least-squares solution ``B A^dagger`` from any ``X0``.
    """
    X = X0.copy()
    for _ in range(iters):
        R = X @ A  # line 3: R_s = B - f(X_s A), fused in place
        bk.relu(R, out=R)
        bk.xp.subtract(B, R, out=R)
        if omega == 1.0:
            X += A_pinv.apply(R)  # line 4
        else:
            X += omega * A_pinv.apply(R)
    return X


def alg3_left(bk, B, A, A_pinv, X0, iters: int, omega: float = 1.0, offset=None):
    """Algorithm 3: ``min_{X >= 0} ||B - f(A X + c e^T)||_F`` by ``X_{s+1} = f(X_s + omega A^dagger R_s)``.

    Parameters
    ----------
    B : target (``Z_hat_i``), q x m.
    A : fixed left factor (``W_i`` without its bias column), q x p.
    A_pinv : dense ``A^dagger``, p x q (:func:`nmfdnn.linalg.left_pinv`).
    X0 : initial guess (``Z_{i-1}`` of the forward pass), p x m, nonnegative. Not modified.
    offset : the bias column ``c`` of ``W_i`` (q x 1) or None; it is constant, not a variable.

    Every iterate is nonnegative (line 4 applies f = ReLU), so the constraint of (8) holds.
    """
    X = X0.copy()
    for _ in range(iters):
        R = A @ X  # line 3
        if offset is not None:
            R += offset
        bk.relu(R, out=R)
        bk.xp.subtract(B, R, out=R)
        step = A_pinv @ R  # line 4
        if omega != 1.0:
            step *= omega
        X += step
        bk.relu(X, out=X)
    return X
