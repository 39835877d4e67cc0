"""A study's archive: its finished runs, one JSON line each, in ``outputs/<study>/runs.jsonl``.

A study folder holds what a reader needs (``README.md``, the generated report and figures) and
``runs.jsonl``; its live run directories (Hydra's, with checkpoints, models and logs) go under
``outputs/<study>/runs/<name>/`` and are not committed. ``nmfdnn report STUDY`` packs every finished
run found there into ``runs.jsonl`` (one record per run name, replaced when the run is redone) and
reports from the archive, so a fresh checkout reports, plots and skips finished runs without the run
directories.

A record is ``{"name", "overrides", "config", "metrics"}``: the run directory's name (the sweep's
``override_dirname``), the command-line overrides that made it, its *effective* config (every key the
run depended on, resolved) and its ``metrics.json`` (per-epoch history included). Lines are written
sorted by name with sorted keys, so the same runs give the same bytes.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from omegaconf import OmegaConf

from .config import effective
from .errors import NmfdnnError
from .fileio import atomic_write_bytes

log = logging.getLogger("nmfdnn")

RUNS_FILE = "runs.jsonl"
RUNS_DIR = "runs"


def effective_config(cfg) -> dict:
    """A run's config as stored in the archive: resolved, with the values ``null`` stands for filled in
    (``solver.factor_dtype`` null = ``dtype``), so that two configs that compute the same compare equal."""
    return effective(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True) if OmegaConf.is_config(cfg)
                     else dict(cfg))


def record_from_dir(run_dir: Path) -> dict | None:
    """The archive record of a finished run directory, or None if it has not finished."""
    run_dir = Path(run_dir)
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        config = OmegaConf.load(run_dir / "config.yaml")
    except (OSError, ValueError):
        return None
    if not isinstance(metrics, dict) or metrics.get("status") != "finished":
        return None
    overrides = []
    ov = run_dir / ".hydra" / "overrides.yaml"
    if ov.is_file():
        try:
            overrides = [str(o) for o in OmegaConf.to_container(OmegaConf.load(ov))]
        except (ValueError, TypeError):
            overrides = []
    return {"name": run_dir.name, "overrides": overrides, "config": effective_config(config), "metrics": metrics}


def read_runs(path: Path, warnings: list[str] | None = None) -> list[dict]:
    """The records of a ``runs.jsonl``; a malformed line is skipped with a warning naming it."""
    path = Path(path)
    out = []
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as e:
        raise NmfdnnError(f"{path}: unreadable ({e})") from None
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            if not (isinstance(r, dict) and isinstance(r.get("name"), str) and isinstance(r.get("config"), dict)
                    and isinstance(r.get("metrics"), dict)):
                raise ValueError("not a run record")
        except ValueError as e:
            msg = f"{path}:{i}: malformed run record ({e}); skipped"
            if warnings is None:
                log.warning(msg)
            else:
                warnings.append(msg)
            continue
        out.append(r)
    return out


def write_runs(path: Path, records: list[dict]) -> None:
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                   for r in sorted(records, key=lambda r: r["name"]))
    atomic_write_bytes(Path(path), text.encode())


def run_dirs(study: Path) -> list[Path]:
    """The run directories of a study: ``study/runs/*`` that hold a ``metrics.json``."""
    root = Path(study) / RUNS_DIR
    return sorted(p.parent for p in root.glob("*/metrics.json")) if root.is_dir() else []


def pack(study: Path) -> int:
    """Add every finished run under ``study/runs/`` to ``study/runs.jsonl`` (a record of the same name
    is replaced); returns how many records were added or changed. Writes nothing if none was."""
    study = Path(study)
    path = study / RUNS_FILE
    records = {r["name"]: r for r in read_runs(path)}
    changed = 0
    for d in run_dirs(study):
        rec = record_from_dir(d)
        if rec is not None and records.get(rec["name"]) != rec:
            records[rec["name"]] = rec
            changed += 1
    if changed:
        write_runs(path, list(records.values()))
    return changed


def archived(run_dir: Path) -> dict | None:
    """The archived record of the run that would live in ``run_dir`` (``STUDY/runs/NAME``), if
    ``STUDY/runs.jsonl`` holds one named NAME; else None."""
    run_dir = Path(run_dir).absolute()
    if run_dir.parent.name != RUNS_DIR:
        return None
    for r in read_runs(run_dir.parent.parent / RUNS_FILE):
        if r["name"] == run_dir.name:
            return r
    return None
