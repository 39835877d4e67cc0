"""CIFAR-10 (Krizhevsky 2009) from its standard python-pickle batches.

``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch``: each a pickled dict with ``data``
(10000 x 3072 uint8, channel-major R, G, B planes of 32 x 32) and ``labels``. Fetched from the usual
URL and verified by the archive's MD5 (the checksum its authors publish).
"""

from __future__ import annotations

import logging
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pooch

from ..errors import DataFormatError, NmfdnnError
from .base import DataSplit, Dataset
from .fetch import URLDownloader, data_root, ensure_dir

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


class _Refused(Exception):
    pass


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only callables a CIFAR-10 batch's pickle names: NumPy's array, scalar and dtype
    reconstruction (under NumPy 1's and 2's module names) and, in protocol 2, ``_codecs.encode``
    (how Python 3 pickles bytes there). None of them runs anything but a constructor."""
    import codecs

    try:
        from numpy._core import multiarray as ma, numeric
    except ImportError:  # NumPy 1
        from numpy.core import multiarray as ma, numeric
    out = {("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = ma._reconstruct
        out[(mod, "scalar")] = ma.scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol 5 arrays
        out[(mod, "_frombuffer")] = numeric._frombuffer
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "ndarray")] = np.ndarray
        out[(mod, "dtype")] = np.dtype
    return out


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits only what the CIFAR-10 python format holds — dicts, lists, bytes,
    strings, ints and NumPy arrays — and refuses any other global *before* it is called, so that
    reading a data file can never execute code (``pickle.load`` would run whatever it names)."""

    _allowed = None

    def find_class(self, module, name):
        if SafeUnpickler._allowed is None:
            SafeUnpickler._allowed = _numpy_globals()
        try:
            return SafeUnpickler._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def read_batch(path: Path, n_classes: int = 10):
    """One pickled batch: (images n x 3072 uint8, labels n), read by :class:`SafeUnpickler`."""
    try:
        with open(path, "rb") as f:
            d = SafeUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except _Refused as e:
        raise DataFormatError(f"{path}: refused to load: its pickle calls {e}, which a CIFAR-10 batch never "
                              "does (reading it with pickle.load would run that code)") from None
    except Exception as e:  # unpickling garbage raises many kinds of errors
        raise DataFormatError(f"{path}: not a CIFAR-10 python batch ({type(e).__name__})") from None
    if not isinstance(d, dict):
        raise DataFormatError(f"{path}: not a CIFAR-10 python batch (no dict)")
    data = d.get(b"data", d.get("data"))
    labels = d.get(b"labels", d.get("labels"))
    if data is None or labels is None:
        raise DataFormatError(f"{path}: a CIFAR-10 batch needs 'data' and 'labels'")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataFormatError(f"{path}: data must be n x 3072 uint8, got {data.shape} {data.dtype}")
    if labels.shape != (data.shape[0],):
        raise DataFormatError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataFormatError(f"{path}: labels out of range 0..{n_classes - 1}")
    return data, labels


def _to_split(data, labels, grayscale: bool) -> DataSplit:
    X = data.astype(np.float32) / 255.0  # n x 3072
    if grayscale:  # ITU-R 601 luma of the R, G, B planes
        X = 0.299 * X[:, :1024] + 0.587 * X[:, 1024:2048] + 0.114 * X[:, 2048:]
    return DataSplit(np.ascontiguousarray(X.T, dtype=np.float32), labels)


def fetch_cifar10(data_dir: str | None = None) -> Path:
    """The folder ``cifar-10-batches-py`` in the data directory, downloaded and verified if needed."""
    root = ensure_dir(data_root(data_dir) / "cifar10")
    folder = root / "cifar-10-batches-py"
    if all((folder / b).exists() for b in [*BATCHES, "test_batch"]):
        return folder
    try:  # pooch: the cached archive if its MD5 matches, else a download verified before it is kept
        archive = pooch.retrieve(CIFAR10_URL, known_hash=f"md5:{CIFAR10_MD5}", fname="cifar-10-python.tar.gz",
                                 path=root, downloader=URLDownloader(timeout=60))
    except ValueError:
        raise NmfdnnError(f"the CIFAR-10 archive from {CIFAR10_URL} has the wrong MD5 (expected {CIFAR10_MD5}); "
                          f"deleted. Put cifar-10-python.tar.gz or the folder cifar-10-batches-py in {root}") from None
    except Exception as e:
        raise NmfdnnError(f"cannot download CIFAR-10 from {CIFAR10_URL} ({getattr(e, 'reason', e)}); put "
                          f"cifar-10-python.tar.gz or the folder cifar-10-batches-py in {root}") from None
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")
    return folder


def load_cifar10(data_dir: str | None = None, grayscale: bool = False, folder: str | None = None) -> Dataset:
    """CIFAR-10: 50,000 training and 10,000 test images, RGB flattened to 3072 features (the paper's
    input) or grey-scale (1024), scaled to [0, 1]. ``folder`` points at an existing batch folder."""
    path = Path(folder) if folder else fetch_cifar10(data_dir)
    parts = [read_batch(path / b) for b in BATCHES]
    train = _to_split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), grayscale)
    test = _to_split(*read_batch(path / "test_batch"), grayscale)
    return Dataset("cifar10", train, test, 10)
