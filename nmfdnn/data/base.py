"""Data sets as host arrays: X is features x samples with values in [0, 1], labels are integers."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import numpy as np

from ..errors import DataFormatError, NmfdnnError


@dataclass
class DataSplit:
    X: np.ndarray  # n_in x m, float32
    labels: np.ndarray  # m, int64

    @property
    def m(self) -> int:
        return int(self.X.shape[1])


@dataclass
class Dataset:
    name: str
    train: DataSplit
    test: DataSplit
    n_classes: int
    val: DataSplit | None = None  # held out of the training samples (dataset.val_size)
    shape: tuple | None = None  # (channels, height, width) of an image sample, C order; None: not images

    @property
    def n_in(self) -> int:
        return int(self.train.X.shape[0])


def one_hot(labels: np.ndarray, n_classes: int, dtype=np.float64) -> np.ndarray:
    """``Y`` (n_classes x m) with ``Y[labels[j], j] = 1`` (Sec. 2: Y is the output data)."""
    Y = np.zeros((n_classes, labels.shape[0]), dtype=dtype)
    Y[labels, np.arange(labels.shape[0])] = 1.0
    return Y


def subset(split: DataSplit, n: int | None, rng_seed: int) -> DataSplit:
    """The first ``n`` samples of a stratified-by-chance permutation (fixed seed), or all."""
    if n is None or n >= split.m:
        return split
    idx = np.sort(np.random.default_rng(rng_seed).permutation(split.m)[:n])
    return DataSplit(np.ascontiguousarray(split.X[:, idx]), split.labels[idx])


def hold_out(split: DataSplit, n: int, seed: int) -> tuple[DataSplit, DataSplit]:
    """``(train, val)``: ``n`` samples of ``split`` drawn with ``seed`` become the validation split;
    the training split keeps the others, in their original order."""
    if not 0 < n < split.m:
        raise NmfdnnError(f"dataset.val_size={n} must be between 1 and {split.m - 1} (the training samples)")
    val = np.zeros(split.m, dtype=bool)
    val[np.random.default_rng(seed).permutation(split.m)[:n]] = True
    take = lambda mask: DataSplit(np.ascontiguousarray(split.X[:, mask]), split.labels[mask])  # noqa: E731
    return take(~val), take(val)


def regular_file(path, max_bytes: int | None = None) -> None:
    """Refuse, in one line, a data file that is missing, not a regular file (a FIFO or a device could
    block a reader or never end) or larger than ``max_bytes``."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataFormatError(f"{path}: not a regular file")
    if max_bytes is not None and st.st_size > max_bytes:
        raise DataFormatError(f"{path}: {st.st_size} bytes, larger than any file of this data set")
