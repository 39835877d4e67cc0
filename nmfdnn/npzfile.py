"""An ``.npz`` a run wrote (``model.npz``, ``checkpoint.npz``) read back as data, header first.

A run folder may come from elsewhere, so nothing in the file is believed before it is checked: the
file must be a zip archive of ``.npy`` members (anything else, a file of zeros say, is refused by
name, not by NumPy's guess that it is a pickle); every member's header is read before its array,
and an array is loaded only if its dtype is a plain one (no objects) and its declared size is what the
member holds and, all members together, what this machine can hold. A header that declares a
``100000 x 100000`` matrix is refused without allocating it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import NmfdnnError
from .fileio import regular_file_problem

MAX_MEMBERS = 10000  # a run's npz holds a few arrays per layer
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _damaged(path, what: str) -> NmfdnnError:
    return NmfdnnError(f"{path} is damaged: {what}; remove it to start over")


def _header(f, path, key):
    """``(shape, dtype)`` of the ``.npy`` member open as ``f``, checked to be a plain array (numbers or
    strings: no objects, no records; what each field must hold, its reader checks)."""
    from numpy.lib import format as npy

    try:
        version = npy.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = npy.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy version {version}")
    except (ValueError, TypeError, SyntaxError, EOFError, OSError) as e:
        raise _damaged(path, f"{key} has no valid array header ({type(e).__name__})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biufcSU":
        raise _damaged(path, f"{key} holds {dtype} data, not plain values")
    if not all(isinstance(n, int) and n >= 0 for n in shape):
        raise _damaged(path, f"{key} has the shape {shape}")
    return tuple(shape), dtype


def read_npz(path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles), each header checked before its data are
    read (see the module's docstring). A missing file raises :class:`FileNotFoundError`; a path that
    is not a regular file, or anything not an ``.npz`` of plain arrays, one-line :class:`NmfdnnError`;
    ``what`` names the file in the refusal of a non-regular path ("a model")."""
    from .memory import available_bytes, gib

    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise FileNotFoundError(2, "No such file or directory", str(path))
    problem = regular_file_problem(path)
    if problem:
        raise NmfdnnError(f"{problem}; refused ({what} is a regular file)")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        if head not in ZIP_MAGIC:
            start = "is empty" if not head else "is all zeros" if not head.strip(b"\0") else f"starts with {head!r}"
            raise _damaged(path, f"not an .npz archive (it {start})")
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _damaged(path, f"{len(infos)} members")
            declared = {}
            for info in infos:
                key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if not info.filename.endswith(".npy"):
                    raise _damaged(path, f"its member {info.filename!r} is not an array")
                with z.open(info) as f:
                    shape, dtype = _header(f, path, key)
                    header_bytes = f.tell()
                count = 1
                for n in shape:
                    count *= n
                nbytes = count * dtype.itemsize
                if header_bytes + nbytes != info.file_size:
                    raise _damaged(path, f"{key} declares {shape} {dtype} ({gib(nbytes)}) but holds "
                                         f"{max(0, info.file_size - header_bytes)} bytes")
                declared[key] = nbytes
            total = sum(declared.values())
            have = available_bytes()
            if have is not None and total > have:
                raise NmfdnnError(f"{path}: its arrays need {gib(total)} of memory, more than the {gib(have)} "
                                  "available here; refused")
        with np.load(path, allow_pickle=False) as z:
            return {key: z[key] for key in declared}
    except NmfdnnError:
        raise
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, NotImplementedError) as e:
        raise _damaged(path, f"{type(e).__name__}: {e}") from None
