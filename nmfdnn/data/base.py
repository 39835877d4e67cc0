"""Data sets as host arrays: X is features x samples with values in [0, 1], labels are integers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np



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
