"""Run-directory file handling: atomic writes (temp file + fsync + rename: a reader never sees a
half-written file, a failed write leaves the previous file intact), one writer per run directory
(an exclusive lock), and a check that a directory can be written at all."""

from __future__ import annotations

import fcntl
import json
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import NmfdnnError

LOCK = ".lock"
# The most a file the tools read back may hold (a metrics.json or config.yaml is a few kB, a study's
# runs.jsonl a few MB): anything larger is not one of ours, and is refused instead of read.
MAX_READ_BYTES = 256 << 20


def read_bytes_checked(path, limit: int = MAX_READ_BYTES) -> bytes:
    """The bytes of ``path`` if it is a regular file (a link to one counts) of at most ``limit`` bytes;
    else :class:`NmfdnnError` naming it. Opened without blocking and checked on the open descriptor,
    so that a FIFO or a device (``/dev/zero``) is refused at once instead of hanging the reader; a
    missing file raises :class:`FileNotFoundError` as ``open`` would."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as e:
        raise NmfdnnError(f"{path}: cannot open ({e.strerror or e})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NmfdnnError(f"{path}: not a regular file; refused")
        if st.st_size > limit:
            raise NmfdnnError(f"{path}: {st.st_size} bytes, more than the {limit} a file of a run may hold; refused")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > limit:
            raise NmfdnnError(f"{path}: grew beyond {limit} bytes while being read; refused")
        return data
    except OSError as e:
        raise NmfdnnError(f"{path}: unreadable ({e.strerror or e})") from None
    finally:
        os.close(fd)


def read_text_checked(path, limit: int = MAX_READ_BYTES) -> str:
    """:func:`read_bytes_checked` decoded as UTF-8 (bad bytes: :class:`NmfdnnError` naming the file)."""
    try:
        return read_bytes_checked(path, limit).decode("utf-8")
    except UnicodeDecodeError:
        raise NmfdnnError(f"{path}: not UTF-8 text; refused") from None


def regular_file_problem(path) -> str | None:
    """Why ``path`` is not a regular file that can be read (None if it is one), without opening it."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"{path}: {e.strerror or e}"
    if not stat.S_ISREG(st.st_mode):
        return f"{path}: not a regular file"
    return None


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


def path_problem(path) -> str | None:
    """Why ``path`` cannot name a file here at all (None if it can), without naming it: a name longer than the file
    system allows (``NAME_MAX``, 255 bytes on most) or a path longer than ``PATH_MAX``; checked before
    anything touches it, since the OS answers such a path with ``ENAMETOOLONG`` from every call."""
    p = Path(path).absolute()
    existing = next((a for a in (p, *p.parents) if _exists(a)), Path("/"))
    try:
        name_max, path_max = os.pathconf(existing, "PC_NAME_MAX"), os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    for part in p.parts:
        if len(os.fsencode(part)) > name_max:
            return f"the name {part[:20]}... has {len(os.fsencode(part))} bytes, more than the {name_max} a name may have"
    if len(os.fsencode(str(p))) >= path_max:
        return f"the path has {len(os.fsencode(str(p)))} bytes, more than the {path_max} a path may have"
    return None


def short_path(path, limit: int = 120) -> str:
    """``path`` for a message: as it is, or its start and end around an ellipsis when longer than ``limit``."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


def os_error_line(e: OSError) -> str:
    """An :class:`OSError` as the part of a one-line message: the path (shortened) and the OS's reason."""
    where = f"{short_path(e.filename)}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except OSError:
        return False


def writable_dir_problem(path) -> str | None:
    """Why files cannot be written into directory ``path`` (created if missing), or None: checked on
    the nearest existing ancestor before any work, so that an unwritable run directory is refused
    at once instead of after an hour of training. A missing directory is probed: a folder created
    and removed at once in that ancestor (``/proc`` and ``/sys`` refuse one whatever their modes say)."""
    problem = path_problem(path)
    if problem:
        return f"{short_path(path)}: {problem}"
    p = Path(path).absolute()
    try:
        while not _exists(p):
            p = p.parent
        if not p.is_dir():
            return f"{path}: {p} is not a directory"
        if os.statvfs(p).f_flag & os.ST_RDONLY:
            return f"{path}: {p} is on a read-only file system"
        if not os.access(p, os.W_OK | os.X_OK):
            return f"{path}: {p} is not writable"
        if p != Path(path).absolute():
            os.rmdir(tempfile.mkdtemp(prefix=".nmfdnn-probe-", dir=p))
    except OSError as e:
        return f"{path}: cannot create a folder in {p} ({e.strerror or e})"
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
