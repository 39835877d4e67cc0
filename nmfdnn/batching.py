"""How many mini-batches an epoch has, in one place: ``ceil(m / batch_size)`` near-equal batches of
the columns (Sec. 3.3; at least one), and how many samples the smallest of them holds. The trainers,
the config checks, the checkpoint checks, the time-to-accuracy clock and the PyTorch comparator all
count batches with these two functions."""

from __future__ import annotations


def n_batches(m: int, batch_size: int) -> int:
    """``ceil(m / batch_size)``, at least 1: the mini-batches of an epoch over ``m`` samples."""
    return max(1, -(-int(m) // int(batch_size)))


def smallest_batch(m: int, batch_size: int) -> int:
    """Samples in the smallest of the :func:`n_batches` near-equal batches (``numpy.array_split``)."""
    return int(m) // n_batches(m, batch_size)
