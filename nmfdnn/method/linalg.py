"""Pseudo-inverses, the one place where the method's factorisations are chosen.

Algorithms 2 and 3 of the paper need ``A^dagger`` of a matrix ``A`` that stays fixed during the
inner iterations. We never form ``A^dagger`` as a dense matrix when applying it as a product of
factors is cheaper, and we factorise each ``A`` once per use, not once per inner iteration.

Every factorisation here (Gram matrices' Cholesky and eigendecompositions, triangular solves, QR,
SVDs) runs in the backend's ``factor_dtype`` (``solver.factor_dtype``), and its floors use that
precision's epsilon; the large products around them stay in the working dtype. With float64 for
both, as in the paper, the casts are no-ops.

Methods (config key ``solver.pinv``):

``svd``
    Economy SVD ``A = U S V^T``; ``A^dagger = V S^-1 U^T`` over the singular values with
    ``s_i / s_1 > rcond`` (the paper's "low-rank approximation of A", Sec. 3.2 and 3.3).
``gram``
    Eigendecomposition of the Gram matrix ``A A^T = Q L Q^T`` (the short side of ``A``);
    ``A^dagger = A^T Q L^-1 Q^T`` over eigenvalues with ``l_i / l_1 > max(rcond^2, p * eps)``.
    The same least-squares solution as ``svd`` for the well-resolved part of the spectrum, at a
    fraction of the cost (one Gram product and a small symmetric eigenproblem instead of the SVD of
    a wide matrix); singular values below ``sqrt(p * eps) * s_1`` are dropped because the Gram
    matrix cannot resolve them. Fast on GPUs too (``eigh`` is, the GPU SVD is not).
``chol``
    Cholesky factorisation of the regularised Gram matrix ``A A^T + delta I = L L^T`` with
    ``delta = max(rcond^2, p * eps) * max_i (A A^T)_ii``: ``A^dagger ~ A^T (A A^T + delta I)^-1``
    (Tikhonov-regularised normal equations). Where ``A`` has full row rank well above that level
    it agrees with ``gram`` and ``svd`` to rounding; directions below it are damped instead of
    dropped (a zero row of ``A``, a dead ReLU unit, still gets a zero column). About ten times
    cheaper than ``gram`` for the 1000 x 1000 Gram matrices of the default network, because a
    Cholesky factorisation costs ``p^3 / 3`` operations and a symmetric eigendecomposition many
    times that. If the factorisation fails (the regularised matrix is still not numerically
    positive definite), the ``gram`` route is taken for that matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import NumericalError

PINV_METHODS = ("chol", "gram", "svd")


@dataclass
class RightPinv:
    """``A^dagger`` of a ``p x m`` matrix ``A``, applied from the right: ``R -> R A^dagger``.

    ``R A^dagger = ((R @ pre) @ left) * scale) @ right`` (``pre`` may be None), so that a
    ``q x m`` residual costs ``O(q m k)`` without ever forming the ``m x p`` pseudo-inverse. The first
    product contracts over the ``m`` columns, so it is where the ranks' shares are summed
    (``bk.allreduce``, the identity in one process).
    """

    bk: Any
    left: Any
    scale: Any
    right: Any
    pre: Any = None

    @property
    def rank(self) -> int:
        return int(self.scale.shape[0])

    @property
    def low_rank(self) -> bool:
        """Whether ``A^dagger = left diag(scale) right`` is a product of thin factors (no ``pre``), so
        that :func:`nmfdnn.method.nonlinear_lsq.alg2_right_carried` applies."""
        return self.pre is None

    def apply(self, R):
        if self.pre is not None:
            T = self.bk.allreduce(R @ self.pre) @ self.left
        else:
            T = self.bk.allreduce(R @ self.left)
        T *= self.scale
        return T @ self.right


@dataclass
class CholRightPinv:
    """``R -> R A^T (A A^T + delta I)^-1`` for a ``p x m`` matrix ``A`` (method ``chol``).

    Each application costs one product ``R A^T`` (``2 q p m``) and two triangular solves
    (``2 q p^2``); the pseudo-inverse is never formed.
    """

    bk: Any
    A: Any
    factor: Any

    low_rank = False

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    def apply(self, R):
        bk = self.bk
        T = bk.allreduce(R @ self.A.T)  # q x p; its transpose is Fortran-ordered, as LAPACK wants it
        return bk.from_factor(bk.cho_solve(self.factor, bk.to_factor(T.T))).T


def ridge(bk, G, rcond: float) -> float:
    """The Tikhonov shift ``delta = max(rcond^2, p eps) * max_i G_ii`` of the ``chol`` method: the same
    relative level below which :func:`truncated_eigh` drops eigenvalues of ``G``."""
    return max(rcond * rcond, G.shape[0] * bk.factor_eps) * bk.scalar(G.diagonal().max())


def gram_cholesky(bk, G, rcond: float):
    """Cholesky factor of ``G + delta I`` (see :func:`ridge`; ``G`` is overwritten), or None when even
    the shifted matrix is not numerically positive definite (the caller then takes ``gram``). The
    factorisation is in the backend's ``factor_dtype``."""
    G = bk.to_factor(G)
    delta = ridge(bk, G, rcond)
    if not delta > 0:  # a zero matrix (or NaN): nothing to factor
        return None
    idx = bk.xp.arange(G.shape[0])
    G[idx, idx] += delta
    try:
        return bk.cho_factor(G)
    except np.linalg.LinAlgError:
        return None


def truncated_eigh(bk, G, rcond: float):
    """Eigenpairs ``(Q_k, l_k)`` of a Gram matrix ``G = A A^T`` with ``l_i > max(rcond^2, p eps) l_max``,
    i.e. the singular values ``s_i = sqrt(l_i)`` of ``A`` above ``rcond * s_1`` that ``G`` resolves."""
    lam, Q = bk.eigh(bk.to_factor(G))
    keep = lam > max(rcond * rcond, G.shape[0] * bk.factor_eps) * lam[-1]
    return bk.from_factor(Q[:, keep]), bk.from_factor(lam[keep])


def truncated_svd(bk, A, rcond: float):
    """Economy SVD ``(U_k, s_k, V_k^T)`` of ``A`` over the singular values ``s_i > rcond * s_1``."""
    U, s, Vt = bk.svd(bk.to_factor(A))
    keep = s > rcond * s[0]
    return bk.from_factor(U[:, keep]), bk.from_factor(s[keep]), bk.from_factor(Vt[keep])


def right_pinv(bk, A, rcond: float, method: str, alpha: float = 0.0, bias: bool = False):
    """Factor ``A`` (p x m) once so that ``R A^dagger`` can be applied repeatedly (Alg. 2, line 4).

    ``rcond`` truncates singular values ``s_i <= rcond * s_1`` (the paper's threshold). ``alpha > 0``
    (``solver.alpha``, beyond the paper) gives the ridge solution of :func:`ridge_right_pinv` instead,
    whatever the method; ``bias`` says that the last row of ``A`` is the ones row (not penalised).
    """
    if alpha > 0:
        return ridge_right_pinv(bk, A, rcond, alpha, bias)
    if method == "svd":
        if bk.world.parallel:
            raise ValueError("pinv='svd' needs all columns of A in one process; choose 'chol' or 'gram'")
        U, s, Vt = truncated_svd(bk, A, rcond)
        return RightPinv(bk, left=Vt.T, scale=1.0 / s, right=U.T)
    if method == "chol":
        factor = gram_cholesky(bk, bk.allreduce(A @ A.T), rcond)
        if factor is not None:
            return CholRightPinv(bk, A, factor)
        method = "gram"
    if method == "gram":
        Q, lam = truncated_eigh(bk, bk.allreduce(A @ A.T), rcond)
        return RightPinv(bk, pre=A.T, left=Q, scale=1.0 / lam, right=bk.xp.ascontiguousarray(Q.T))
    raise ValueError(f"unknown pseudo-inverse method {method!r}; choose one of {PINV_METHODS}")


def _short_side_gram(A):
    """``(short, G)``: the Gram matrix of ``A`` (q x p) on its short side, ``A A^T`` or ``A^T A``."""
    short = A.shape[0] <= A.shape[1]
    return short, (A @ A.T if short else A.T @ A)


def _short_side_solve(bk, A, short: bool, factor):
    """``A^dagger`` from the Cholesky factor of the (shifted) short-side Gram matrix: ``A^T G^-1 =
    (G^-1 A)^T`` on the short side, else ``G^-1 A^T``."""
    B = bk.to_factor(A.copy(order="F") if short else A.T.copy(order="F"))  # cho_solve overwrites it
    return bk.from_factor(bk.cho_solve(factor, B).T if short else bk.cho_solve(factor, B))


def left_pinv(bk, A, rcond: float, method: str, lam: float = 0.0):
    """The dense pseudo-inverse ``A^dagger`` (p x q) of a small ``q x p`` weight matrix (Alg. 3).

    Weight matrices are small (at most a few thousand square), so the pseudo-inverse is formed
    once and each inner iteration of Algorithm 3 costs one product ``A^dagger R``. ``lam > 0``
    (``solver.lam``, beyond the paper) gives the ridge pseudo-inverse of :func:`ridge_left_pinv`.
    """
    if lam > 0:
        return ridge_left_pinv(bk, A, lam)
    if method == "svd":
        U, s, Vt = truncated_svd(bk, A, rcond)
        return (Vt.T / s) @ U.T
    if method == "chol":
        short, G = _short_side_gram(A)
        factor = gram_cholesky(bk, G, rcond)
        if factor is not None:
            return _short_side_solve(bk, A, short, factor)
        method = "gram"
    if method == "gram":
        if A.shape[0] <= A.shape[1]:  # A^dagger = A^T (A A^T)^-1 on the short side
            Q, lam = truncated_eigh(bk, A @ A.T, rcond)
            return (A.T @ Q / lam) @ Q.T
        Q, lam = truncated_eigh(bk, A.T @ A, rcond)  # A^dagger = (A^T A)^-1 A^T
        return (Q / lam) @ (Q.T @ A.T)
    raise ValueError(f"unknown pseudo-inverse method {method!r}; choose one of {PINV_METHODS}")


def mean_energy(bk, G, n: int) -> float:
    """``trace(G[:n, :n]) / n``: the mean squared row norm of ``A`` for ``G = A A^T``, the scale that
    makes the ridge parameters relative (the hidden activations' scale depends on the autoencoder)."""
    return bk.scalar(G.diagonal()[:n].sum()) / max(n, 1)


def ridge_right_pinv(bk, A, rcond: float, alpha: float, bias: bool = False) -> CholRightPinv:
    """The ridge-regularised ``R -> R A^T (A A^T + a D)^-1`` of a ``p x m`` matrix ``A``: the least
    squares update ``W = R A^dagger`` of Algorithm 2, semi-NMF and the output initialisation with the
    penalty ``a ||W D^(1/2)||_F^2`` (Arai, Imakura and Sakurai 2018: the filter
    ``W U diag(s^2 / (s^2 + a)) U^T``), where ``a = alpha * trace(A A^T) / p`` is relative to the mean
    squared row norm of ``A`` (so one alpha fits every layer and scale). ``D = I``, except that with a
    bias the ones row of ``A`` is a fixed constraint and its column of ``W`` (the bias) is not
    penalised. On top, the shift of the ``chol`` route (:func:`ridge`) keeps the factorisation
    defined; every route solves these regularised normal equations by Cholesky when ``alpha > 0``."""
    G = bk.allreduce(A @ A.T)
    n = G.shape[0] - int(bias)
    idx = bk.xp.arange(n)
    G[idx, idx] += alpha * mean_energy(bk, G, n)
    factor = gram_cholesky(bk, G, rcond)
    if factor is None:
        raise np.linalg.LinAlgError("the ridge-regularised Gram matrix is not positive definite")
    return CholRightPinv(bk, A, factor)


def ridge_left_pinv(bk, A, lam: float):
    """``(A^T A + l I)^-1 A^T = A^T (A A^T + l I)^-1`` of a ``q x p`` weight matrix: Algorithm 3's
    ``A^dagger`` with the penalty ``l ||X||_F^2`` on the hidden matrix ``X`` (solved on the short side),
    ``l = lam * ||A||_F^2 / min(q, p)`` relative to the mean squared norm of ``A``'s rows or columns."""
    short, G = _short_side_gram(A)
    idx = bk.xp.arange(G.shape[0])
    G[idx, idx] += lam * mean_energy(bk, G, G.shape[0])
    return _short_side_solve(bk, A, short, bk.cho_factor(bk.to_factor(G)))


@dataclass
class InputSVD:
    """The truncated SVD ``X ~ U_1 S_1 V_1^T`` of the whole training input (Sec. 3.3).

    Computed once; a mini-batch ``X(:, J)`` reuses it as ``U_1 S_1 V_1(J,:)^T``.
    """

    U: Any  # n_in x r
    s: Any  # r
    V: Any  # m x r

    @property
    def rank(self) -> int:
        return int(self.s.shape[0])


def input_svd(bk, X, threshold: float, bias: bool = False, energy: float | None = None) -> InputSVD:
    """Truncated SVD of ``X`` keeping ``s_i / s_1 > threshold`` (Sec. 3.3).

    ``energy`` (beyond the paper, ``solver.input_energy``) replaces the fixed ratio: the
    fewest leading directions whose ``s_i^2`` sum to at least ``energy`` times ``||X||_F^2 = sum s_i^2``
    (the share of the input's energy the first layer sees); ``energy = 1`` keeps every direction the
    Gram matrix resolves (the full input).

    With ``bias``, ``X`` is treated as augmented by a row of ones, ``[X; e^T]``; the extra row is
    kept exactly as an additional factor (``U`` gains the unit vector of that row, ``s`` gains
    ``sqrt(m)`` and ``V`` the column ``e / sqrt(m)``), so that a mini-batch's pseudo-inverse covers
    the bias column of ``W_1``.
    """
    xp = bk.xp
    # The SVD of the short side: X X^T is n_in x n_in, far cheaper than the SVD of n_in x m; with
    # several processes each sums its share of the columns. V covers all m columns on every rank.
    Xs = bk.share(X)
    Q, lam = truncated_eigh(bk, bk.allreduce(Xs @ Xs.T), threshold if energy is None else 0.0)
    if energy is not None:  # ascending eigenvalues: keep the top k holding the energy share
        import numpy as np

        lam_host = np.asarray(bk.to_numpy(lam), dtype=np.float64)[::-1]
        k = int(np.searchsorted(np.cumsum(lam_host), energy * lam_host.sum() * (1 - 1e-12))) + 1
        k = min(k, lam_host.size)
        Q, lam = Q[:, -k:], lam[-k:]
    U = xp.ascontiguousarray(Q[:, ::-1])  # descending singular values
    s = xp.sqrt(lam[::-1])
    V = (X.T @ U) / s
    if bias:
        n, m = X.shape
        U = xp.concatenate([xp.concatenate([U, xp.zeros((1, U.shape[1]), dtype=U.dtype)]),
                            xp.zeros((n + 1, 1), dtype=U.dtype)], axis=1)
        U[n, -1] = 1.0
        s = xp.concatenate([s, xp.asarray([m ** 0.5], dtype=s.dtype)])
        V = xp.concatenate([V, xp.full((m, 1), m ** -0.5, dtype=V.dtype)], axis=1)
    return InputSVD(U=U, s=s, V=V)


def ridge_batch_input_pinv(bk, svd: InputSVD, J, alpha: float, bias: bool = False) -> RightPinv:
    """The ridge-regularised pseudo-inverse of the batch input ``X_J = U_1 S_1 V_1(J,:)^T`` (see
    :func:`ridge_right_pinv`): ``X_J^T (X_J X_J^T + a I)^-1 = V_J (V_J^T V_J + a S_1^-2)^-1 S_1^-1 U_1^T``,
    an r x r Cholesky factorisation, with ``a = alpha * trace(X_J X_J^T) / n_0`` as there; with a bias
    its factor (the ones row, last) is neither penalised nor counted in the trace."""
    VJ = svd.V[J]
    G = bk.allreduce(VJ.T @ VJ)
    k = G.shape[0] - int(bias)
    s2 = svd.s * svd.s
    energy = bk.scalar((s2[:k] * G.diagonal()[:k]).sum()) / (svd.U.shape[0] - int(bias))
    d = alpha * energy / s2
    if bias:
        d[-1] = 0.0
    idx = bk.xp.arange(G.shape[0])
    G[idx, idx] += d
    return _batch_pinv_from_gram(bk, svd, VJ, bk.cho_factor(bk.to_factor(G)))


def _batch_pinv_from_gram(bk, svd: InputSVD, VJ, factor) -> RightPinv:
    """``V_J G^-1 S_1^-1 U_1^T`` from the Cholesky factor of the r x r matrix ``G`` (``V_J^T V_J``,
    possibly shifted by a ridge)."""
    left = bk.from_factor(bk.cho_solve(factor, bk.to_factor(VJ.T.copy(order="F")))).T
    return RightPinv(bk, left=left, scale=1.0 / svd.s, right=svd.U.T)


def batch_input_pinv(bk, svd: InputSVD, J, method: str, alpha: float = 0.0, bias: bool = False) -> RightPinv:
    """Pseudo-inverse of the mini-batch input ``X(:, J) ~ U_1 S_1 V_1(J,:)^T`` (Sec. 3.3).

    ``literal``: the paper's slice ``V_1(J,:) S_1^-1 U_1^T``; exact only when ``V_1(J,:)`` has
    orthonormal columns, which a mini-batch's rows do not.
    ``qr``: the exact pseudo-inverse of the rank-r batch matrix ``U_1 S_1 V_1(J,:)^T``: with
    ``V_1(J,:) = Q R`` it is ``Q R^-T S_1^-1 U_1^T`` (``R`` is r x r, invertible when the batch has
    at least r linearly independent samples).
    ``chol``: the same matrix, ``V_1(J,:) (V_1(J,:)^T V_1(J,:))^-1 S_1^-1 U_1^T``, by a Cholesky
    factorisation of the r x r Gram matrix. When a batch has fewer than r independent samples
    (a tiny batch, repeated samples), both fall back to the SVD of ``V_1(J,:) S_1``: the batch
    matrix's pseudo-inverse over its numerical rank.
    ``alpha > 0`` (``solver.alpha``, beyond the paper) gives :func:`ridge_batch_input_pinv` instead.
    """
    if alpha > 0:
        return ridge_batch_input_pinv(bk, svd, J, alpha, bias)
    VJ = svd.V[J]
    if method == "chol":
        # The same matrix as qr: Q R^-T = V_J R^-1 R^-T = V_J (V_J^T V_J)^-1, with the r x r Gram
        # matrix (well conditioned: V_1 has orthonormal columns over all m samples) factored by
        # Cholesky instead of a QR of the b x r block (ten times cheaper).
        try:
            factor = bk.cho_factor(bk.to_factor(bk.allreduce(VJ.T @ VJ)))
        except np.linalg.LinAlgError:
            factor = None  # fewer than r independent samples in the batch: the SVD route below
        if factor is not None:
            pivots = factor[0].diagonal() ** 2  # a factorisation that barely succeeded is no better
            if bk.scalar(pivots.min()) > VJ.shape[1] * bk.factor_eps * bk.scalar(pivots.max()):
                return _batch_pinv_from_gram(bk, svd, VJ, factor)
    if method == "literal":
        return RightPinv(bk, left=VJ, scale=1.0 / svd.s, right=svd.U.T)
    if bk.world.parallel:  # the QR and SVD of a column block need all of its rows in one process
        raise NumericalError("a batch with fewer independent samples than the input rank (or input_pinv=qr) "
                             "cannot be factored across processes; use input_pinv=chol and larger batches")
    if method == "qr" and VJ.shape[0] >= VJ.shape[1]:
        Q, R = bk.qr(bk.to_factor(VJ))
        d = bk.xp.abs(R.diagonal())
        if bk.scalar(d.min()) > VJ.shape[1] * bk.factor_eps * bk.scalar(d.max()):
            # Q R^-T = (R^-1 Q^T)^T
            left = bk.from_factor(bk.solve_triangular(R, Q.T, lower=False).T)
            return RightPinv(bk, left=left, scale=1.0 / svd.s, right=svd.U.T)
    if method in ("chol", "qr"):
        # V_J has dependent columns: X_J^dagger = (S_1 V_J^T)^dagger U_1^T, and with the SVD
        # V_J S_1 = P s Q^T, (S_1 V_J^T)^dagger = Q s^-1 P^T.
        P, sv, Qt = truncated_svd(bk, VJ * svd.s, max(VJ.shape) * bk.factor_eps)
        return RightPinv(bk, left=(P / sv) @ Qt, scale=bk.xp.ones_like(svd.s), right=svd.U.T)
    raise ValueError(f"unknown input pseudo-inverse method {method!r}; choose chol, qr or literal")
