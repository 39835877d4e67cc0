"""Reader for the IDX format of MNIST (http://yann.lecun.com/exdb/mnist/), raw or gzip-compressed."""

from __future__ import annotations

import gzip
import io
import math
import os
import zlib

import numpy as np

from ..errors import DataFormatError
from .base import regular_file

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


MAX_IDX_BYTES = 1 << 33  # 8 GiB: far above any IDX data set this tool reads; a header asking more is refused


def _read_exactly(f, n: int, name: str, what: str) -> bytes:
    buf = f.read(n)
    if len(buf) != n:
        raise DataFormatError(f"{name}: truncated {what} ({len(buf)} of {n} bytes)")
    return buf


def _read_idx_stream(f, name: str) -> np.ndarray:
    """The IDX array of a binary stream: the header first, then exactly the bytes it announces (a size
    computed in Python integers, refused above :data:`MAX_IDX_BYTES`) and one byte more to tell
    trailing data; nothing further is read (a compressed stream is never inflated past that).

    Layout: two zero bytes, a type code, the number of dimensions ``k``, ``k`` big-endian uint32
    sizes, then the data in C order."""
    head = _read_exactly(f, 4, name, "IDX header")
    if head[0] != 0 or head[1] != 0:
        raise DataFormatError(f"{name}: bad magic number (first bytes {head.hex()}), not an IDX file")
    code, ndim = head[2], head[3]
    if code not in _TYPES:
        raise DataFormatError(f"{name}: unknown IDX data type 0x{code:02x}")
    if ndim == 0:
        raise DataFormatError(f"{name}: IDX header declares zero dimensions")
    dims = _read_exactly(f, 4 * ndim, name, "IDX header")
    shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    dt = np.dtype(_TYPES[code])
    expect = math.prod(shape) * dt.itemsize  # Python integers: no overflow
    if expect > MAX_IDX_BYTES:
        raise DataFormatError(f"{name}: IDX header shape {shape} announces {expect} bytes; refused")
    body = f.read(expect + 1)
    if len(body) != expect:
        what = "truncated" if len(body) < expect else "has trailing bytes"
        raise DataFormatError(f"{name}: {what}: header shape {shape} needs {expect} bytes of data")
    return np.frombuffer(body, dtype=dt).reshape(shape)


def parse_idx(buf: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an IDX file; raise :class:`DataFormatError` for anything malformed."""
    return _read_idx_stream(io.BytesIO(buf), name)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (``.gz`` decompressed on the fly) from a regular file (a FIFO or a device
    could block or never end)."""
    path = os.fspath(path)
    regular_file(path)
    try:
        with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
            return _read_idx_stream(f, path)
    except DataFormatError:
        raise
    except (OSError, EOFError, zlib.error) as e:
        raise DataFormatError(f"{path}: cannot read: {e}") from None


def idx_pair(images: np.ndarray, labels: np.ndarray, name: str, n_classes: int = 10, labels_name: str | None = None):
    """Check an (images, labels) pair and return ``X`` (features x samples, float in [0,1]) and labels;
    an error names the images file ``name`` or, for the labels, ``labels_name``."""
    lname = labels_name or name
    if images.ndim < 2:
        raise DataFormatError(f"{name}: images must have at least 2 dimensions, got shape {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{lname}: labels must be 1-dimensional, got shape {labels.shape}")
    if images.shape[0] == 0:
        raise DataFormatError(f"{name}: no samples")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(f"{name}: {images.shape[0]} images but {lname} holds {labels.shape[0]} labels")
    if labels.dtype.kind not in "iu":
        raise DataFormatError(f"{lname}: labels must be integers, the file holds {labels.dtype}")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise DataFormatError(f"{lname}: labels out of range 0..{n_classes - 1} "
                              f"(found {int(labels.min())}..{int(labels.max())})")
    X = images.reshape(images.shape[0], -1).T
    scale = 255.0 if images.dtype == np.uint8 else 1.0
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise DataFormatError(f"{name}: images hold non-finite values")
    if images.dtype != np.uint8 and (images.min() < 0 or images.max() > scale):
        raise DataFormatError(f"{name}: image values must lie in [0, 1] (found {float(images.min()):g}.."
                              f"{float(images.max()):g}); scale them first")
    return X, labels.astype(np.int64), scale
