"""A small synthetic classification set for tests: nonnegative features, learnable classes."""

from __future__ import annotations

import numpy as np

from .base import DataSplit, Dataset


def make_synthetic(n_train: int = 600, n_test: int = 200, n_features: int = 20, n_classes: int = 3,
                   seed: int = 0, image=None) -> Dataset:
    """Gaussian class clusters in [0, 1]^n_features (clipped), one prototype per class. With ``image``
    ``(c, h, w)`` the samples are tiny images of ``c h w`` features (``n_features`` is then unused):
    what the convolutional tests train on."""
    if image:
        n_features = int(np.prod(image))
    rng = np.random.default_rng(seed)
    protos = rng.random((n_classes, n_features))

    def draw(m):
        lab = rng.integers(0, n_classes, size=m)
        X = protos[lab] + 0.15 * rng.standard_normal((m, n_features))
        return DataSplit(np.ascontiguousarray(np.clip(X, 0, 1).T, dtype=np.float32), lab.astype(np.int64))

    return Dataset("synthetic", draw(n_train), draw(n_test), n_classes, shape=tuple(image) if image else None)
