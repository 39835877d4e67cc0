"""Data sets as host arrays: X is features x samples with values in [0, 1], labels are integers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import NmfdnnError


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


def _subset(split: DataSplit, n: int | None, rng_seed: int) -> DataSplit:
    """The first ``n`` samples of a stratified-by-chance permutation (fixed seed), or all."""
    if n is None or n >= split.m:
        return split
    idx = np.sort(np.random.default_rng(rng_seed).permutation(split.m)[:n])
    return DataSplit(np.ascontiguousarray(split.X[:, idx]), split.labels[idx])


def load_dataset(cfg) -> Dataset:
    """Load the data set described by the ``dataset`` config group; subsample if asked."""
    name = cfg.name
    if name == "mnist":
        from .mnist import load_mnist

        ds = load_mnist(cfg.get("data_dir"))
    elif name == "fashion_mnist":
        from .mnist import load_fashion_mnist

        ds = load_fashion_mnist(cfg.get("data_dir"))
    elif name == "cifar10":
        from .cifar10 import load_cifar10

        ds = load_cifar10(cfg.get("data_dir"), grayscale=bool(cfg.get("grayscale", False)), folder=cfg.get("folder"))
    elif name == "idx":
        from .mnist import load_idx_pair

        ds = load_idx_pair(cfg.train_images, cfg.train_labels, cfg.test_images, cfg.test_labels,
                           n_classes=cfg.n_classes)
    elif name == "synthetic":
        from .synthetic import make_synthetic

        ds = make_synthetic(cfg.n_train, cfg.n_test, cfg.n_features, cfg.n_classes, cfg.seed)
    else:
        raise NmfdnnError(f"unknown dataset {name!r}")
    train = _subset(ds.train, cfg.get("train_subset"), 12345)
    test = _subset(ds.test, cfg.get("test_subset"), 54321)
    return Dataset(ds.name, train, test, ds.n_classes)
