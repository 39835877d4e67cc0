"""One run across processes: the MPI communicator behind the backend's reduction hook.

``mpiexec -n P nmfdnn train ...`` (or ``srun -n P``) starts P copies of the same command. Each copy
(a *rank*) loads the data, draws the same random numbers and so builds the same mini-batches; it then
keeps every P-th column of each column set (:meth:`World.share`) and works on those alone. Where the
method sums over columns (Gram matrices, ``R A^T``, the NMF products, error counts) the backend's
:meth:`nmfdnn.backend.Backend.allreduce` adds the ranks' parts, so that every rank holds the same
weights. Rank 0 alone writes outputs and checkpoints; an error every rank must see goes through
:meth:`World.agree`.

Without an MPI launcher there is one rank and no MPI at all: mpi4py is imported only when the
environment says that a launcher started this process among others.
"""

from __future__ import annotations

import os
import sys
import time
from functools import lru_cache

import numpy as np

from .errors import NmfdnnError

# What launchers put into each process's environment: the number of processes of the job.
_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "PMIX_SIZE")


def launcher_size() -> int:
    """How many processes a launcher says this job has (1 when none started it): MPICH's and OpenMPI's
    ``mpiexec``, ``srun --mpi=pmi2`` / ``--mpi=pmix``, and a SLURM job step of several tasks (a plain
    ``srun -n P`` without an MPI plugin: :func:`world` then refuses it, since its P processes would not
    know of each other and would all write the same run)."""
    for var in _SIZE_VARS:
        v = os.environ.get(var, "")
        if v.isdigit():
            return int(v)
    v = os.environ.get("SLURM_STEP_NUM_TASKS", "")
    return int(v) if v.isdigit() and int(v) > 1 else 1


def launcher_rank() -> int:
    """This process's rank as the launcher's environment gives it (0 without a launcher): known before
    MPI starts, so that an error found by every process is printed once."""
    if launcher_size() <= 1:
        return 0
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        v = os.environ.get(var, "")
        if v.isdigit():
            return int(v)
    return 0


class World:
    """The processes of one run: ``rank`` of ``size``, and the few collectives the method needs.

    With ``size == 1`` every collective is the identity and nothing is imported; the counters
    (``seconds``, ``bytes``, ``calls``) measure the time spent in and the data moved by all-reduces.
    """

    def __init__(self, comm=None):
        self.comm = comm
        self.rank = 0 if comm is None else comm.Get_rank()
        self.size = 1 if comm is None else comm.Get_size()
        self.seconds = 0.0
        self.bytes = 0
        self.calls = 0

    @property
    def parallel(self) -> bool:
        return self.size > 1

    @property
    def root(self) -> bool:
        return self.rank == 0

    # -- the data split ------------------------------------------------------------------------
    def share(self, a):
        """This rank's columns of ``a`` (every ``size``-th, from column ``rank``); a 1-d array: its
        entries. The same rule for every column set, so a matrix drawn over a whole batch and the
        batch's data split alike."""
        if self.size == 1:
            return a
        return a[self.rank::self.size] if a.ndim == 1 else a[:, self.rank::self.size]

    # -- collectives ---------------------------------------------------------------------------
    def allreduce(self, a, op: str = "sum"):
        """``a`` summed (or maxed, ``op="max"``) over the ranks, in place; every rank gets the same
        result. ``a`` is a host (NumPy) or device array with a buffer MPI can read."""
        if self.size == 1:
            return a
        from mpi4py import MPI

        t0 = time.perf_counter()
        buf = a if a.flags.c_contiguous or a.flags.f_contiguous else np.ascontiguousarray(a)
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM if op == "sum" else MPI.MAX)
        if buf is not a:
            a[...] = buf
        self.seconds += time.perf_counter() - t0
        self.bytes += a.nbytes
        self.calls += 1
        return a

    def sum(self, x: float) -> float:
        """A scalar summed over the ranks."""
        if self.size == 1:
            return x
        return float(self.allreduce(np.asarray([x], dtype=np.float64))[0])

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true on any rank (every rank gets the answer)."""
        if self.size == 1:
            return bool(flag)
        return bool(self.allreduce(np.asarray([int(bool(flag))], dtype=np.int64), "max")[0])

    def bcast(self, obj):
        """Rank 0's ``obj`` on every rank (pickled: small objects, checkpoints)."""
        return obj if self.size == 1 else self.comm.bcast(obj, root=0)

    def agree(self, fn, *, root_only: bool = False):
        """Run ``fn()`` (on rank 0 only with ``root_only``) and raise the same :class:`NmfdnnError`
        on every rank if it raised one on any: a refusal that one rank finds ends the run on all of
        them, each with the same one-line message, instead of leaving the others waiting in the next
        collective. Returns rank 0's value on every rank."""
        value, problem = None, None
        if self.root or not root_only:
            try:
                value = fn()
            except NmfdnnError as e:
                problem = e
        if self.size == 1:
            if problem is not None:
                raise problem
            return value
        problems = self.comm.allgather(None if problem is None else (type(problem), str(problem)))
        first = next((p for p in problems if p is not None), None)
        if first is not None:
            raise problem if problem is not None else first[0](first[1])
        return self.bcast(value) if root_only else value

    def local_size(self) -> int:
        """How many ranks of this run share this machine (for their BLAS threads)."""
        if self.size == 1:
            return 1
        from mpi4py import MPI

        return self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()

    def abort(self, code: int = 1) -> None:
        """End every rank now (an unexpected error on one of them); never returns under MPI."""
        if self.size > 1:
            sys.stderr.flush()
            self.comm.Abort(code)


SINGLE = World()


@lru_cache(maxsize=1)
def world() -> World:
    """The world of this process: MPI's when a launcher started it among others, else one rank."""
    size = launcher_size()
    if size <= 1:
        return SINGLE
    try:
        from mpi4py import MPI
    except ImportError:
        raise NmfdnnError(f"this process is one of {size} started by an MPI launcher, but mpi4py is missing: "
                          "pip install 'nmfdnn[mpi]' (mpi4py and MPICH), or run without mpiexec") from None
    w = World(MPI.COMM_WORLD)
    if w.size != size and not any(v in os.environ for v in _SIZE_VARS):  # srun without an MPI plugin
        raise NmfdnnError(f"srun started {size} tasks that MPI does not connect (it sees {w.size}): start them with "
                          "srun --mpi=pmi2 (or export SLURM_MPI_TYPE=pmi2), or use one task")
    if w.size != size:  # e.g. OpenMPI's mpiexec starting a program linked against MPICH
        raise NmfdnnError(f"the launcher started {size} processes but MPI sees {w.size}: mpi4py's MPI is not the "
                          "launcher's (use the mpiexec installed with nmfdnn[mpi], or build mpi4py against yours)")
    return w
