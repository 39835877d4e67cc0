"""The settings the paper's algorithms read, as plain values: no config node reaches ``method/``.

Built once per run from the solver config by :meth:`NMFSettings.from_mapping` (any mapping: a plain
dict or the composed config); the defaults live in one place, the schema of :mod:`nmfdnn.config`, so
this class restates none. A reader can call :func:`nmfdnn.method.finetune.finetune_batch` with an
``NMFSettings(...)`` built by hand, without Hydra.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class NMFSettings:
    """Every key of ``solver=nmf`` that Algorithms 2-5 read (names as in the config, ``solver.*``; the bias
    and the frozen filters are the layers' own, :mod:`nmfdnn.method.layers`)."""

    ae_iters: int  # Algorithm 5: outer iterations
    ae_nmf_iters: int  # Algorithm 5, line 4: NMF (9) updates per outer iteration
    ae_lsq_iters: int  # Algorithm 5, line 5: Algorithm 2 iterations for (10)
    lsq_iters: int  # Algorithm 4: iterations of Algorithms 2 and 3 per batch
    semi_nmf_iters: int  # Algorithm 4, line 3: semi-NMF (4) rounds per batch
    omega: float  # step of Algorithms 2 and 3
    input_pinv: str  # batch pseudo-inverse of the truncated input (Sec. 3.3): chol, qr or literal
    pinv: str  # hidden-layer pseudo-inverses: chol, gram or svd
    hidden_rcond: float  # their truncation s_i / s_1
    output_init: str  # W_d after pre-training: lstsq or zeros
    alpha: float  # beyond the paper: ridge on the W updates
    beta: float  # beyond the paper: + beta Z in semi-NMF's Z update
    lam: float  # beyond the paper: ridge on Algorithm 3's pseudo-inverse
    safeguard: bool  # beyond the paper: Algorithms 2 and 3 keep a step only if the residual falls
    layer_omega: tuple[float, ...] | None  # beyond the paper: omega per layer (W_1 ... W_{d-1})
    ae_normalize: bool  # beyond the paper: Algorithm 5's NMF factor Z_hat rescaled to unit row maxima
    cg_iters: int  # beyond the paper: CGLS steps for L^+ of Algorithm 3 through a convolution
    l1_weights: float = 0.0  # beyond the paper: L1 penalty on the W updates (Algorithm 2, method/sparse.py)
    l1_activations: float = 0.0  # beyond the paper: L1 penalty on the hidden targets (semi-NMF, Alg. 3)
    filter_step: str = "alg2"  # beyond the paper: a conv layer's step, alg2 or gauss_newton (method/filters.py)
    filter_rho: float = 1e-3  # beyond the paper: the Gauss-Newton filter step's relative damping
    filter_cg_iters: int = 10  # beyond the paper: its CG steps
    filter_target: str = "above"  # beyond the paper: the layer above's target, or the network's output Y
    filter_order: str = "after"  # beyond the paper: the filter step after or before the layer above's W step
    filter_trace: bool = False  # record every conv layer's filter step (share of the residual above removed)
    ae_whiten: float | None = None  # beyond the paper: Algorithm 5 on whitened patches (method/filterbank.py)
    ae_patches: int = 100000  # the patches it factors
    memory: float = 0.0  # beyond the paper: running Gram matrices across batches (method/memory.py)

    @classmethod
    def from_mapping(cls, sol) -> "NMFSettings":
        """The settings of a solver config (``sol[name]`` for every field; enums as their values)."""
        def plain(name):
            v = sol[name]
            if name == "layer_omega":
                return None if v is None else tuple(float(x) for x in v)
            return getattr(v, "value", v)

        return cls(**{f.name: plain(f.name) for f in fields(cls) if f.name in sol})


def layer_omega(sol: NMFSettings, i: int) -> float:
    """omega of Algorithms 2 and 3 for the paper's layer ``i`` (``W_i``, ``Z_{i-1}``):
    ``layer_omega[i - 1]`` when given, else ``omega``."""
    return float(sol.layer_omega[i - 1]) if sol.layer_omega else sol.omega
