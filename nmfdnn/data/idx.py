"""Reader for the IDX format of MNIST (http://yann.lecun.com/exdb/mnist/), raw or gzip-compressed."""

from __future__ import annotations

import gzip
import os

import numpy as np

from ..errors import DataFormatError

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(buf: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an IDX file; raise :class:`DataFormatError` for anything malformed.

    Layout: two zero bytes, a type code, the number of dimensions ``k``, ``k`` big-endian uint32
    sizes, then the data in C order. The body must hold exactly ``prod(sizes)`` items.
    """
    if len(buf) < 4:
        raise DataFormatError(f"{name}: too short for an IDX header ({len(buf)} bytes)")
    if buf[0] != 0 or buf[1] != 0:
        raise DataFormatError(f"{name}: bad magic number (first bytes {buf[:4].hex()}), not an IDX file")
    code, ndim = buf[2], buf[3]
    if code not in _TYPES:
        raise DataFormatError(f"{name}: unknown IDX data type 0x{code:02x}")
    if ndim == 0:
        raise DataFormatError(f"{name}: IDX header declares zero dimensions")
    head = 4 + 4 * ndim
    if len(buf) < head:
        raise DataFormatError(f"{name}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    dt = np.dtype(_TYPES[code])
    count = int(np.prod(shape, dtype=np.int64)) if shape else 0
    expect = count * dt.itemsize
    body = len(buf) - head
    if body != expect:
        what = "truncated" if body < expect else "has trailing bytes"
        raise DataFormatError(f"{name}: {what}: header shape {shape} needs {expect} bytes of data, file has {body}")
    return np.frombuffer(buf, dtype=dt, count=count, offset=head).reshape(shape)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` decompressed on the fly)."""
    path = os.fspath(path)
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                buf = f.read()
        else:
            with open(path, "rb") as f:
                buf = f.read()
    except FileNotFoundError:
        raise DataFormatError(f"{path}: no such file") from None
    except (OSError, EOFError) as e:
        raise DataFormatError(f"{path}: cannot read: {e}") from None
    return parse_idx(buf, path)


def idx_pair(images: np.ndarray, labels: np.ndarray, name: str, n_classes: int = 10):
    """Check an (images, labels) pair and return ``X`` (features x samples, float in [0,1]) and labels."""
    if images.ndim < 2:
        raise DataFormatError(f"{name}: images must have at least 2 dimensions, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{name}: labels must be 1-dimensional, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(f"{name}: {images.shape[0]} images but {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataFormatError(f"{name}: labels out of range 0..{n_classes - 1} "
                              f"(found {int(labels.min())}..{int(labels.max())})")
    X = images.reshape(images.shape[0], -1).T
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    return X, labels.astype(np.int64), scale
