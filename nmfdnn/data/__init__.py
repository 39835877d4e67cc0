"""Data sets as host arrays (X is features x samples in [0, 1], integer labels) and their registry.

``LOADERS`` maps the ``dataset.name`` of a config to the function that loads it from that config
node; :func:`load_dataset` is the one entry point the run machinery uses.
"""

from __future__ import annotations

from typing import Callable

from ..errors import NmfdnnError
from .base import DataSplit, Dataset, hold_out, one_hot, subset
from .cifar10 import load_cifar10
from .mnist import load_fashion_mnist, load_idx_pair, load_mnist
from .synthetic import make_synthetic

__all__ = ["DataSplit", "Dataset", "LOADERS", "load_dataset", "one_hot", "training_arrays"]

LOADERS: dict[str, Callable] = {
    "mnist": lambda c: load_mnist(c.get("data_dir")),
    "fashion_mnist": lambda c: load_fashion_mnist(c.get("data_dir")),
    "cifar10": lambda c: load_cifar10(c.get("data_dir"), grayscale=bool(c.grayscale), folder=c.get("folder")),
    "idx": lambda c: load_idx_pair(c.train_images, c.train_labels, c.test_images, c.test_labels,
                                   n_classes=c.n_classes),
    "synthetic": lambda c: make_synthetic(c.n_train, c.n_test, c.n_features, c.n_classes, c.seed,
                                          list(c.image) if c.get("image") else None),
}


def load_dataset(cfg) -> Dataset:
    """Load the data set described by the ``dataset`` config node; subsample if asked, then hold out
    ``val_size`` training samples as the validation split (never seen by training)."""
    if cfg.name not in LOADERS:
        raise NmfdnnError(f"unknown dataset {cfg.name!r}: choose one of {', '.join(LOADERS)}")
    try:
        ds = LOADERS[cfg.name](cfg)
    except MemoryError as e:  # a refusal like any other (under MPI: every rank sees it, World.agree)
        from ..memory import out_of_memory

        raise NmfdnnError(out_of_memory(e)) from None
    except OSError as e:  # a path the OS refuses (too long, a folder that is a file, ...)
        from ..fileio import os_error_line

        raise NmfdnnError(f"data set {cfg.name}: {os_error_line(e)}") from None
    train = subset(ds.train, cfg.get("train_subset"), 12345)
    test = subset(ds.test, cfg.get("test_subset"), 54321)
    val = None
    if cfg.get("val_size"):
        train, val = hold_out(train, int(cfg.val_size), int(cfg.get("val_seed") or 0))
    data = Dataset(ds.name, train, test, ds.n_classes, val, shape=ds.shape)
    problem = degenerate(data)
    if problem:
        raise NmfdnnError(f"data set {ds.name}: {problem}; nothing to train on")
    return data


def degenerate(data: Dataset) -> str | None:
    """Why ``data`` cannot be trained on, or None: samples of zero features (images of zero size), an
    empty split, or a training input that is all zero (its SVD has rank 0: the first layer's
    pseudo-inverse of Sec. 3.3 is empty, and no method can learn from it)."""
    import numpy as np

    if data.n_in < 1:
        return f"its samples have {data.n_in} features (images of zero size?)"
    for name, split in (("training", data.train), ("test", data.test)):
        if split.m < 1:
            return f"its {name} split is empty"
    if not np.any(data.train.X):
        return "every training input is zero (input rank 0)"
    if not np.all(np.isfinite(data.train.X)):
        return "the training input holds NaN or infinite values"
    return None


def training_arrays(bk, data: Dataset):
    """``X`` and ``Y`` of the training split on the backend, columns (samples) contiguous so that a
    mini-batch ``X(:, J)`` is a fast gather of whole columns, and the test inputs."""
    X = bk.xp.asfortranarray(bk.asarray(data.train.X))
    Y = bk.xp.asfortranarray(bk.asarray(one_hot(data.train.labels, data.n_classes)))
    return X, Y, bk.asarray(data.test.X)
