"""Memory across mini-batches: running Gram matrices in every Algorithm 2 and semi-NMF weight step
(beyond the paper, ``solver.memory = beta``; 0 is the paper's step and takes none of this code).

The step. Algorithm 2's line 4 for ``min_W ||B - f(W A)||`` is ``W <- W + omega R A^+`` with
``A^+ = A^T (A A^T)^-1`` (``A``: p x m, more columns than rows), a fit to one batch's columns only. With
memory the batch's Gram matrix is replaced by a running one,

    G_k = beta G_{k-1} + A_k A_k^T,        W <- W + omega R A_k^T (G_k + delta I)^-1,

kept in float64 across batches and epochs (``delta``: the ``hidden_rcond`` shift of
:func:`linalg.ridge`). With ``f`` the identity, ``omega = 1``, one iteration per batch and ``beta = 1``
this is block recursive least squares: ``W_k G_k = W_{k-1} G_{k-1} + B_k A_k^T`` by induction, so after
``K`` batches ``W_K = (sum_k B_k A_k^T) G_K^-1``, the least-squares solution on all ``K`` batches'
columns at once (``tests/test_memory.py`` checks this). ``beta < 1`` forgets old batches geometrically;
it is what lets a dense layer take more features than one batch has samples.

Semi-NMF's W update (4), ``W = Y Z^+``, becomes the same step from the current ``W``:
``W <- W + (Y - W Z) Z^T G_k^-1`` (for ``beta = 0`` the two agree in exact arithmetic).

The dense first layer with the truncated input ``X_J ~ U_1 S_1 V_J^T`` (Sec. 3.3): its Gram matrix
lives in the ``r``-dimensional coordinates, ``A A^T = U_1 S_1 (V_J^T V_J) S_1 U_1^T``, so the running
matrix is ``H_k = beta H_{k-1} + V_J^T V_J`` (r x r) and ``R A^T (A A^T)^+ = R V_J H_k^-1 S_1^-1 U_1^T``
(:func:`linalg.batch_input_pinv`'s ``chol`` form with ``H_k`` for ``V_J^T V_J``).

Under ``mpiexec`` every batch Gram matrix is allreduced before it is added, so every process holds the
same ``G``. The matrices are part of a run's state: :meth:`GramMemory.state` goes into the checkpoint.
"""

from __future__ import annotations

from .linalg import CholRightPinv, RightPinv, _batch_pinv_from_gram, gram_cholesky, truncated_eigh


class GramMemory:
    """The running Gram matrices of one network, by slot (``"w3"``: Algorithm 2 of ``W_3``,
    ``"semi"``: semi-NMF's ``W_d``, ``"input"``: the truncated input of ``W_1``)."""

    def __init__(self, beta: float):
        self.beta = float(beta)
        self.G: dict = {}

    def running(self, bk, key: str, G_batch, commit: bool = True):
        """``beta G_{k-1} + G_batch`` in float64 (``G_batch`` already summed over the processes); kept
        as the slot's state when ``commit``."""
        G = bk.xp.asarray(G_batch, dtype=bk.xp.float64)
        prev = self.G.get(key)
        if prev is not None:
            G = G + self.beta * prev
        if commit:
            self.G[key] = G
        return G

    def right_pinv(self, bk, A, key: str, rcond: float, commit: bool = True):
        """``R -> R A^T (G_k + delta I)^-1`` with the slot's running ``G_k`` (Cholesky of a copy; the
        truncated eigendecomposition when even the shifted matrix is not positive definite)."""
        G = self.running(bk, key, bk.allreduce(A @ A.T), commit)
        factor = gram_cholesky(bk, G.copy(), rcond)
        if factor is not None:
            return CholRightPinv(bk, A, factor)
        Q, lam = truncated_eigh(bk, G, rcond)
        return RightPinv(bk, pre=A.T, left=Q, scale=1.0 / lam, right=bk.xp.ascontiguousarray(Q.T))

    def input_pinv(self, bk, svd, J):
        """The first dense layer's ``R -> R V_J H_k^-1 S_1^-1 U_1^T`` (module docstring)."""
        VJ = svd.V[J]
        H = self.running(bk, "input", bk.allreduce(VJ.T @ VJ))
        return _batch_pinv_from_gram(bk, svd, VJ, bk.cho_factor(bk.to_factor(H.copy())))

    def state(self, bk) -> dict:
        """The matrices as host arrays, ``memory_<slot>`` each (the checkpoint's)."""
        return {f"memory_{k}": bk.to_numpy(v) for k, v in self.G.items()}

    def load(self, bk, arrays: dict) -> None:
        self.G = {k[len("memory_"):]: bk.xp.asarray(v, dtype="float64") for k, v in arrays.items()
                  if k.startswith("memory_")}
