"""Run-directory file handling: atomic writes (temp file + fsync + rename: a reader never sees a
half-written file, a failed write leaves the previous file intact), one writer per run directory
(an exclusive lock), and a check that a directory can be written at all."""

from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import NmfdnnError

LOCK = ".lock"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader never sees a half-written file. A write that fails
    (a full disk, a read-only or unwritable folder) removes its temporary file, leaves any previous
    ``path`` as it was and raises :class:`NmfdnnError` naming the path and the OS error."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise NmfdnnError(f"cannot write {path}: {e.strerror or e}; the previous file, if any, is unchanged") from None
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def writable_dir_problem(path) -> str | None:
    """Why files cannot be written into directory ``path`` (created if missing), or None: checked on
    the nearest existing ancestor before any work, so that an unwritable run directory is refused
    at once instead of after an hour of training."""
    p = Path(path).absolute()
    while not p.exists():
        p = p.parent
    if not p.is_dir():
        return f"{path}: {p} is not a directory"
    if os.statvfs(p).f_flag & os.ST_RDONLY:
        return f"{path}: {p} is on a read-only file system"
    if not os.access(p, os.W_OK | os.X_OK):
        return f"{path}: {p} is not writable"
    return None


@contextmanager
def run_lock(run_dir):
    """One writer per run directory: an exclusive ``flock`` on ``RUN_DIR/.lock`` held for the whole
    run. A second process gets :class:`NmfdnnError` ("RUN is being written by process PID") at once;
    a lock left by a killed process does not block (the kernel drops it with the process)."""
    path = Path(run_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        f = open(path, "a+")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            pid = f.read().strip() or "unknown"
            f.close()
            raise NmfdnnError(f"{run_dir} is being written by process {pid}; wait for it or stop it first") from None
        # The holder unlinks the file while it still holds the lock: a descriptor opened before that
        # unlink locks a file no longer at the path. Only the file at the path counts; else retry.
        try:
            held = os.fstat(f.fileno())
            current = os.stat(path)
            if (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                break
        except FileNotFoundError:
            pass
        f.close()
    else:  # pragma: no cover - a path replaced a hundred times in a row
        raise NmfdnnError(f"{run_dir}: cannot take the lock {path} (it keeps being replaced)")
    try:
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        path.unlink(missing_ok=True)  # while still holding the lock
        f.close()


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def atomic_write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2) + "\n").encode())
