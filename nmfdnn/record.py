"""A run directory's record of how it was made (``RUN/.hydra/overrides.yaml``, ``RUN/.hydra/config.yaml``),
read as data and written only once a run has passed every check.

A run directory may come from elsewhere (a colleague's download), so its record is never handed to
Hydra as a command line: :func:`recorded_overrides` accepts only plain ``key=value`` overrides of the
train schema — no entry starting with ``-``, no ``~``
(``+key``/``++key``: read as ``key``, a key the schema has), no ``hydra`` key or group path,
no interpolation, no sweep — and anything else is a one-line :class:`NmfdnnError` before any work.
Hydra itself writes no record (``hydra.output_subdir=null``): :func:`write_record` does, after the
lock is held and the run directory and the config have been checked, so a refused command leaves the
directory as it was.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from .config import TrainConfig
from .errors import NmfdnnError
from .fileio import atomic_write_bytes

RECORD_DIR = ".hydra"
OVERRIDES = "overrides.yaml"
MAX_RECORD_BYTES = 1 << 20  # a real record is a few hundred bytes
GROUPS = ("dataset", "solver", "backend", "experiment")
ROOTS = frozenset({f.name for f in fields(TrainConfig)} | set(GROUPS))
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
# run-specific entries a record carries that a resume or an eval sets itself
_DROPPED = ("resume=",)


def check_override(o, where: str) -> str:
    """``o`` if it is a plain ``key=value`` override of the train schema, else a one-line error naming
    ``where`` it came from."""
    if not isinstance(o, str):
        raise NmfdnnError(f"{where}: {o!r} is not an override (KEY=VALUE); refused")
    key, sep, value = o.partition("=")
    if not sep or not _KEY.fullmatch(key):
        raise NmfdnnError(f"{where}: {o!r} is not a plain KEY=VALUE override of the train config; refused "
                          "(no options, no +, ++, ~ or group paths)")
    if key.split(".")[0] not in ROOTS:
        raise NmfdnnError(f"{where}: {o!r} sets {key!r}, which is not a key of the train config; refused "
                          f"(allowed: {', '.join(sorted(ROOTS))})")
    if "${" in value:
        raise NmfdnnError(f"{where}: {o!r} holds an interpolation; refused (a record holds plain values)")
    if "\n" in o or "\x00" in o:
        raise NmfdnnError(f"{where}: {o!r} holds a control character; refused")
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (parsed,) = OverridesParser.create().parse_overrides([o])
    except Exception as e:  # noqa: BLE001 (Hydra's grammar errors come in several types)
        raise NmfdnnError(f"{where}: {o!r} is not a valid override ({type(e).__name__}); refused") from None
    if parsed.is_sweep_override():
        raise NmfdnnError(f"{where}: {o!r} is a sweep, not one value; refused")
    return o


def recorded_overrides(run_dir: Path) -> list[str]:
    """The overrides ``run_dir`` was made with, checked entry by entry (:func:`check_override`);
    a record that is not a plain YAML list of strings is refused in one line."""
    path = Path(run_dir) / RECORD_DIR / OVERRIDES
    try:
        if not path.is_file():
            raise NmfdnnError(f"{run_dir} is not a run directory of nmfdnn train (no {RECORD_DIR}/{OVERRIDES})")
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise NmfdnnError(f"{path}: {path.stat().st_size} bytes, not a run record; refused")
        data = yaml.safe_load(path.read_text())  # safe: no tags, no objects
    except NmfdnnError:
        raise
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise NmfdnnError(f"{path}: unreadable ({type(e).__name__}); refused") from None
    if data is None:
        data = []
    if not isinstance(data, list):
        raise NmfdnnError(f"{path}: not a list of overrides; refused")
    return [check_override(_plain(o), str(path)) for o in data
            if not (isinstance(o, str) and _plain(o).startswith(_DROPPED))]


def _plain(o):
    """A recorded ``+key=value`` / ``++key=value`` as ``key=value``: composition refuses a ``+`` key no
    schema has (:func:`nmfdnn.config.hydra.check_composed`), so a run's own record of one names a key
    of the schema, which the plain form sets just the same."""
    if isinstance(o, str) and o.startswith("+"):
        return o[2:] if o.startswith("++") else o[1:]
    return o


def quote(value: str) -> str:
    """``value`` as a single-quoted Hydra override value: Hydra's grammar escapes a quote with a
    backslash, and a run of backslashes only where it precedes a quote or the closing quote; ``${``
    is escaped so that OmegaConf does not read it as an interpolation."""
    escaped = re.sub(r"(\\*)(?='|$)", lambda m: m.group(1) * 2, str(value))
    return "'" + escaped.replace("'", "\\'").replace("${", "\\${") + "'"  # \${: a literal ${ for OmegaConf


def unquote(value: str) -> str:
    """An override value as Hydra reads it (quotes removed, escapes resolved); ``value`` itself if
    Hydra cannot parse it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        return str(OverridesParser.create().parse_override(f"k={value}").value())
    except Exception:  # noqa: BLE001 (not a value Hydra reads: the caller's check reports it)
        return value


def write_record(run_dir: Path, cfg_yaml: str, overrides: list[str]) -> None:
    """``RUN/.hydra/config.yaml`` and ``overrides.yaml``, written atomically (what Hydra would write)."""
    d = Path(run_dir) / RECORD_DIR
    atomic_write_bytes(d / "config.yaml", cfg_yaml.encode())
    atomic_write_bytes(d / OVERRIDES, yaml.safe_dump([str(o) for o in overrides], default_flow_style=False).encode())
