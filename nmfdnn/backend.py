"""The one seam between the numerical code and an array library.

Every solver receives a :class:`Backend` and does all of its array work through ``bk.xp`` (the
NumPy-compatible array module) and the few linear-algebra helpers below, never by importing NumPy,
SciPy or CuPy itself. A CuPy backend therefore slots in without touching the math.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import NmfdnnError
from .parallel import SINGLE, World

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass
class Backend:
    """An array module plus the dense linear algebra the method needs.

    Attributes
    ----------
    name : "numpy" or "cupy".
    xp : the array module (``numpy`` or ``cupy``).
    dtype : the floating-point type of every matrix (float64 as in the paper, or float32).
    factor_dtype : the type of the small, ill-conditioned steps (Gram matrices, their Cholesky and
        eigen-decompositions, triangular solves, SVDs; :mod:`nmfdnn.method.linalg`); None: ``dtype``.
        float64 with a float32 ``dtype`` keeps the large products in single precision and makes the
        pseudo-inverses' floors independent of it.
    world : the processes of the run (:mod:`nmfdnn.parallel`); one by default. With several, each
        holds a share of every column set (:meth:`share`) and :meth:`allreduce` is the one place
        where their partial sums over columns meet.
    """

    name: str
    xp: Any
    dtype: Any
    _solve_triangular: Any = None
    _cho_factor: Any = None
    _cho_solve: Any = None
    factor_dtype: Any = None
    world: World = SINGLE
    reduce_bytes: int = 0  # what the all-reduces moved (counted in one process too: the volume P ranks would)
    reduce_calls: int = 0

    def __post_init__(self):
        if self.factor_dtype is None:
            self.factor_dtype = self.dtype

    # -- conversion --------------------------------------------------------------------------
    def asarray(self, a) -> Any:
        """Move ``a`` onto the backend in the working dtype (a no-op when it is already there)."""
        return self.xp.asarray(a, dtype=self.dtype)

    def to_numpy(self, a) -> np.ndarray:
        """Copy a backend array to host memory (for metrics and saving only)."""
        if self.name == "cupy":
            return a.get()
        return np.asarray(a)

    def index(self, J):
        """A host integer index array as one the backend can index with (device array on a GPU)."""
        return J if self.name == "numpy" else self.xp.asarray(J)

    def scalar(self, a) -> float:
        return float(self.to_numpy(a))

    @property
    def eps(self) -> float:
        return float(np.finfo(self.dtype).eps)

    @property
    def factor_eps(self) -> float:
        """Machine epsilon of the factorisations (:attr:`factor_dtype`)."""
        return float(np.finfo(self.factor_dtype).eps)

    def to_factor(self, A):
        """``A`` in the factorisations' dtype (the same array when it already is)."""
        return A.astype(self.factor_dtype, copy=False)

    def from_factor(self, A):
        """A factorisation's result back in the working dtype (the same array when it already is)."""
        return A.astype(self.dtype, copy=False)

    # -- element-wise ------------------------------------------------------------------------
    def relu(self, U, out=None):
        """f(U) = max(U, 0), the paper's activation (Sec. 3). ``out=U`` works in place."""
        return self.xp.maximum(U, 0, out=out)

    # -- factorisations ----------------------------------------------------------------------
    def svd(self, A):
        """Economy SVD ``A = U diag(s) Vt``."""
        return self.xp.linalg.svd(A, full_matrices=False)

    def eigh(self, G):
        """Eigendecomposition of a symmetric matrix, eigenvalues ascending."""
        return self.xp.linalg.eigh(G)

    def qr(self, A):
        """Reduced QR decomposition ``A = Q R``."""
        return self.xp.linalg.qr(A, mode="reduced")

    def solve_triangular(self, R, B, lower=False, trans=False):
        """Solve ``R X = B`` (or ``R^T X = B`` with ``trans``) for triangular ``R``."""
        return self._solve_triangular(R, B, lower=lower, trans="T" if trans else "N")

    def cho_factor(self, G):
        """Cholesky factor of a symmetric positive definite ``G`` (overwritten); raises
        ``numpy.linalg.LinAlgError`` when ``G`` is not positive definite."""
        if self._cho_factor is not None:
            # G is symmetric, so its transpose is the same matrix in the Fortran order LAPACK works in
            # (a C-ordered G would be copied first, which made the factorisation 2-4x slower).
            return self._cho_factor(G.T if G.flags.c_contiguous else G, lower=True, overwrite_a=True,
                                    check_finite=False)
        L = self.xp.linalg.cholesky(G)
        if not bool(self.xp.isfinite(L[-1, -1])):  # CuPy may return NaN instead of raising
            raise np.linalg.LinAlgError("matrix is not positive definite")
        return L, True

    def cho_solve(self, factor, B):
        """Solve ``G X = B`` with the factor from :meth:`cho_factor` (``B`` may be overwritten)."""
        if self._cho_solve is not None:
            return self._cho_solve(factor, B, overwrite_b=True, check_finite=False)
        L, _ = factor
        T = self._solve_triangular(L, B, lower=True)
        return self._solve_triangular(L, T, lower=True, trans="T")

    def check_finite(self, A) -> bool:
        """Whether ``A`` is finite on every rank (collective: all ranks get the same answer)."""
        return not self.world.any(not bool(self.xp.isfinite(A).all()))

    # -- several processes (nmfdnn.parallel); identities with one --------------------------------
    def allreduce(self, A, op: str = "sum"):
        """``A`` summed (``op="max"``: maxed) over the ranks, in place: the reduction hook of the method.
        It follows every product that contracts over the columns (the samples), e.g. ``A A^T`` or
        ``R A^T``, so that each rank works on its share of the columns. Returns ``A``."""
        self.reduce_bytes += A.nbytes
        self.reduce_calls += 1
        if not self.world.parallel:
            return A
        if self.name == "cupy":  # through host memory (an MPI need not be CUDA-aware)
            host = self.world.allreduce(self.to_numpy(A).copy(), op)
            A[...] = self.xp.asarray(host)
            return A
        return self.world.allreduce(A, op)

    def share(self, A):
        """This rank's columns of ``A`` (all of them with one rank): see :meth:`World.share`."""
        return self.world.share(A)

    def total(self, x):
        """A scalar (a count, a sum of squares) summed over the ranks."""
        return type(x)(self.world.sum(x)) if self.world.parallel else x

    def synchronize(self) -> None:
        """Wait for queued device work (for honest timers); a no-op on the CPU."""
        if self.name == "cupy":
            self.xp.cuda.get_current_stream().synchronize()


def get_backend(name: str = "numpy", dtype: str = "float64", factor_dtype: str | None = None) -> Backend:
    """Build the backend named in the config (``backend.name``) for ``dtype``, with its factorisations
    in ``factor_dtype`` (``solver.factor_dtype``; None: ``dtype``)."""
    for d in (dtype, factor_dtype or dtype):
        if str(d) not in DTYPES:
            raise NmfdnnError(f"unknown dtype {d!r}: choose one of {', '.join(DTYPES)}")
    bk = _backend(name, str(dtype))
    bk.factor_dtype = DTYPES[str(factor_dtype or dtype)]
    return bk


def _backend(name: str, dtype: str) -> Backend:
    if name == "numpy":
        import scipy.linalg

        return Backend("numpy", np, DTYPES[dtype], scipy.linalg.solve_triangular, scipy.linalg.cho_factor,
                       scipy.linalg.cho_solve)
    if name == "cupy":
        try:
            import cupy
            import cupyx.scipy.linalg
        except ImportError:
            raise NmfdnnError(
                "backend=cupy needs CuPy: install it with `pip install 'nmfdnn[gpu]'` "
                "(a CuPy wheel matching your CUDA version)"
            ) from None
        try:
            if cupy.cuda.runtime.getDeviceCount() < 1:
                raise RuntimeError("no device")
        except Exception:
            raise NmfdnnError("backend=cupy needs an NVIDIA GPU, and none is visible") from None
        # CuPy's linalg returns NaN instead of raising when a factorisation fails; make it raise.
        # (The solvers also check every step's output for non-finite values.)
        import cupyx

        cupyx.seterr(linalg="raise")
        return Backend("cupy", cupy, DTYPES[dtype], cupyx.scipy.linalg.solve_triangular)
    raise NmfdnnError(f"unknown backend {name!r}: choose numpy or cupy")


# -- what a run sets up around its backend (used by train, the estimators and the bench tools) --
def _is_numpys(filepath: str) -> bool:
    """Whether a loaded BLAS library is the one NumPy's matrix products use (its wheel's copy)."""
    return os.path.dirname(np.__file__).rstrip(os.sep) + ".libs" in filepath or \
        f"{os.sep}numpy{os.sep}" in filepath


@contextmanager
def blas_threads(n):
    """BLAS threads for this process's numerical work: ``n`` for NumPy's library (None: its default,
    all cores), one for any *other* BLAS library, i.e. the copy SciPy's wheel brings for the Cholesky
    factorisations and triangular solves.

    Two OpenBLAS thread pools on the same cores fight: the idle workers of one spin while the other
    multiplies. With SciPy's pool at one thread a [1000,500] MNIST fine-tuning epoch took 2.45-2.76 s
    instead of 4.65-4.86 s for six batches in float32 and 5.05-5.40 s instead of 7.0-7.6 s in float64
    on the 2-core development machine (README, speed); the small factorisations lose little.
    Where NumPy and SciPy share one BLAS library, only ``n`` applies.
    """
    try:
        import scipy.linalg  # noqa: F401  (load SciPy's BLAS now, so that it is found and capped)
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - both are dependencies
        yield
        return
    libs = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    saved = [(lib, lib.num_threads) for lib in libs]
    # Only when NumPy's own library is recognised are the others capped at one thread; otherwise
    # (an unfamiliar layout) every library gets n, as a plain cap would do.
    separate = any(_is_numpys(lib.filepath) for lib in libs) and len(libs) > 1
    try:
        for lib in libs:
            if separate and not _is_numpys(lib.filepath):
                lib.set_num_threads(1)
            elif n is not None:
                lib.set_num_threads(int(n))
        yield
    finally:
        for lib, k in saved:
            lib.set_num_threads(k)


def backend_for(cfg, name: str | None = None, w: World | None = None):
    """The backend of a run: ``backend.name`` (or ``name``), ``dtype``, and the solver's
    ``factor_dtype`` for the factorisations (NMF; backprop has none), over the processes ``w``
    (:func:`nmfdnn.parallel.world` when None)."""
    from .config import dtype_name
    from .parallel import world

    factor = cfg.solver.get("factor_dtype")
    bk = get_backend(name or cfg.backend.name, dtype_name(cfg), str(factor) if factor is not None else None)
    bk.world = w if w is not None else world()
    return bk
