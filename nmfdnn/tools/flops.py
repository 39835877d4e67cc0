"""FLOPs counted from the code path actually executed, not from a model of it (``nmfdnn bench``).

A run on :func:`counting_backend` does exactly what a run on the NumPy backend does (the same
arrays, the same BLAS and LAPACK calls, the same results), and on the way counts, per phase of
:class:`PhaseFlops` (the run's timers), the floating-point operations of every matrix product and
factorisation it executes through the backend seam:

- ``2 m n k`` per product ``(m x k) @ (k x n)`` (``@`` and ``numpy.matmul`` on the backend's arrays),
  ``m^2 k`` for a Gram product ``A A^T`` or ``A^T A`` (NumPy computes those with a symmetric
  rank-k update);
- ``p^3 / 3`` per Cholesky factorisation, ``q p^2`` per triangular solve of ``q`` right-hand sides,
  ``2 b r^2`` per QR of ``b x r``; symmetric eigendecompositions and SVDs count nothing (their time
  is measured, their arithmetic is not), nor do element-wise operations. Rates derived from these
  counts are therefore lower bounds of the arithmetic a phase really does.

The counts cannot drift from the code: they are the code's own products, whatever the pseudo-inverse
route, the bias, the number of layers or a fallback taken at run time.
"""

from __future__ import annotations

import types
from collections import defaultdict
from contextlib import contextmanager

import numpy as np

from ..timers import Timers

_ACTIVE: list["PhaseFlops"] = []


def _count(flops: float) -> None:
    if _ACTIVE:
        t = _ACTIVE[-1]
        t.flops[t.phase[-1] if t.phase else "other"] += flops


class CountingArray(np.ndarray):
    """An ndarray whose matrix products are counted into the active :class:`PhaseFlops`."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, CountingArray) else x for x in inputs]
        outs = kwargs.get("out")
        if outs is not None:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, CountingArray) else o for o in outs)
        if ufunc is np.matmul and method == "__call__":
            a, b = plain[0], plain[1]
            (m, k), n = a.shape, b.shape[-1]
            gram = (a.shape == b.shape[::-1] and a.T.strides == b.strides  # b is a.T: the same buffer, transposed
                    and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])
            _count(m * m * k if gram else 2 * m * n * k)
        result = getattr(ufunc, method)(*plain, **kwargs)
        if outs is not None:  # the caller's own buffers, still counting arrays
            return outs[0] if len(outs) == 1 else outs
        return _wrap(result)


def _wrap(x):
    if isinstance(x, np.ndarray) and not isinstance(x, CountingArray):
        return x.view(CountingArray)
    if isinstance(x, tuple):
        return type(x)(*map(_wrap, x)) if hasattr(x, "_fields") else tuple(map(_wrap, x))
    return x


def _plain(x):
    return x.view(np.ndarray) if isinstance(x, CountingArray) else x


class _CountingModule(types.SimpleNamespace):
    """``numpy`` (or ``numpy.linalg``) whose functions return counting arrays."""

    def __init__(self, module):
        super().__init__()
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if isinstance(attr, types.ModuleType):
            return _CountingModule(attr)
        if callable(attr) and not isinstance(attr, type) and not isinstance(attr, np.ufunc):
            def call(*args, **kwargs):
                return _wrap(attr(*args, **kwargs))
            return call
        return attr


def counting_backend(bk):
    """A copy of the NumPy backend ``bk`` whose arrays and factorisations count their FLOPs."""
    import copy

    if bk.name != "numpy":
        raise ValueError("FLOPs are counted on the NumPy backend")
    c = copy.copy(bk)
    c.xp = _CountingModule(np)
    solve_triangular, cho_factor, cho_solve = bk._solve_triangular, bk._cho_factor, bk._cho_solve

    def counted_solve_triangular(R, B, lower=False, trans="N"):
        _count(R.shape[0] ** 2 * (B.shape[1] if B.ndim == 2 else 1))
        return _wrap(solve_triangular(_plain(R), _plain(B), lower=lower, trans=trans))

    def counted_cho_factor(G, **kwargs):
        _count(G.shape[0] ** 3 / 3)
        L, lower = cho_factor(_plain(G), **kwargs)
        return _wrap(L), lower

    def counted_cho_solve(factor, B, **kwargs):
        p = factor[0].shape[0]
        _count(2 * p * p * (B.shape[1] if B.ndim == 2 else 1))
        return _wrap(cho_solve((_plain(factor[0]), factor[1]), _plain(B), **kwargs))

    c._solve_triangular, c._cho_factor, c._cho_solve = counted_solve_triangular, counted_cho_factor, counted_cho_solve
    qr = bk.qr

    def counted_qr(A):
        _count(2 * A.shape[0] * A.shape[1] ** 2)
        return _wrap(qr(_plain(A)))

    c.qr = counted_qr
    return c


class PhaseFlops(Timers):
    """The run's timers, which also collect the FLOPs counted in each phase (``self.flops``)."""

    def __init__(self, bk=None):
        super().__init__(bk)
        self.flops: dict[str, float] = defaultdict(float)
        self.phase: list[str] = []

    @contextmanager
    def __call__(self, name: str):
        self.phase.append(name)
        try:
            with super().__call__(name):
                yield
        finally:
            self.phase.pop()

    @contextmanager
    def counting(self):
        """Count into this object while the block runs."""
        _ACTIVE.append(self)
        try:
            yield self
        finally:
            _ACTIVE.remove(self)
