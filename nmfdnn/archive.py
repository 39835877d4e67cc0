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
from .config.stored import stored_config_problem
from .errors import NmfdnnError
from .fileio import atomic_write_bytes, read_text_checked

log = logging.getLogger("nmfdnn")

RUNS_FILE = "runs.jsonl"
RUNS_DIR = "runs"


def effective_config(cfg) -> dict:
    """A run's config as stored in the archive: resolved, with the values ``null`` stands for filled in
    (``solver.factor_dtype`` null = ``dtype``), so that two configs that compute the same compare equal."""
    return effective(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True) if OmegaConf.is_config(cfg)
                     else dict(cfg))


class NotFinished(NmfdnnError):
    """A run folder that holds no finished run (still running, interrupted, failed, or empty)."""


def read_metrics(path: Path) -> dict:
    """A ``metrics.json`` as a dict, read only if it is a regular file of bounded size; a damaged one is
    :class:`NmfdnnError` naming it (a missing one: :class:`FileNotFoundError`)."""
    try:
        m = json.loads(read_text_checked(path))
    except ValueError as e:
        raise NmfdnnError(f"{path}: unreadable ({e})") from None
    if not isinstance(m, dict):
        raise NmfdnnError(f"{path}: not a JSON object")
    return m


def read_config(path: Path) -> dict:
    """A run's ``config.yaml`` as a plain dict (interpolations resolved), checked against the schema
    field by field (:func:`nmfdnn.config.stored.stored_config_problem`); anything else is one
    :class:`NmfdnnError` line naming the file and the field (a missing file: :class:`FileNotFoundError`)."""
    text = read_text_checked(path)
    try:
        config = OmegaConf.to_container(OmegaConf.create(text), resolve=True, enum_to_str=True) if text.strip() else {}
    except Exception as e:  # noqa: BLE001 (bad YAML and failed interpolations raise many kinds)
        raise NmfdnnError(f"{path}: unreadable ({type(e).__name__})") from None
    problem = stored_config_problem(config)
    if problem:
        raise NmfdnnError(f"{path}: {problem}")
    return config


def metrics_problem(m: dict) -> str | None:
    """Why a finished run's metrics cannot be counted, or None: a test error that is not a finite
    number (a run that diverged would blank its group's mean), a history that is not a list of
    epochs, a number field of another type."""
    import math
    import numbers

    def finite(x):
        return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)

    if not isinstance(m.get("test_error"), numbers.Real) or isinstance(m.get("test_error"), bool):
        return "no numeric test_error"
    if not finite(m["test_error"]):
        return f"test_error is {m['test_error']} (not finite)"
    history = m.get("history", [])  # the report needs none; plot skips runs without one
    if not isinstance(history, list) or not all(
            isinstance(h, dict) and finite(h.get("test_error")) and finite(h.get("seconds"))
            and (h.get("train_error") is None or isinstance(h.get("train_error"), numbers.Real))
            for h in history):
        return "its history is not a list of epochs with finite test_error and seconds"
    for key in ("train_error", "val_error", "pretrain_seconds", "finetune_seconds", "total_seconds", "n_train",
                "seed"):
        v = m.get(key)
        if v is not None and not (isinstance(v, numbers.Real) and not isinstance(v, bool)):
            return f"{key} is not a number"
        if key == "val_error" and v is not None and not math.isfinite(v):
            return f"val_error is {v} (not finite)"
    return None


def finished_run(run_dir: Path) -> tuple[dict, dict]:
    """``(config, metrics)`` of the finished run in ``run_dir``: its ``metrics.json`` says
    ``finished``, its numbers are finite and its ``config.yaml`` fits the schema. A folder without a
    finished run raises :class:`NotFinished`; anything damaged :class:`NmfdnnError`, one line each."""
    run_dir = Path(run_dir)
    try:
        metrics = read_metrics(run_dir / "metrics.json")
    except FileNotFoundError:
        raise NotFinished(f"{run_dir}: no metrics.json") from None
    if metrics.get("status") != "finished":
        raise NotFinished(f"{run_dir}: status {metrics.get('status')!r}, not finished")
    problem = metrics_problem(metrics)
    if problem:
        raise NmfdnnError(f"{run_dir / 'metrics.json'}: {problem}")
    try:
        config = read_config(run_dir / "config.yaml")
    except FileNotFoundError:
        raise NmfdnnError(f"{run_dir}: metrics.json says finished but there is no config.yaml") from None
    return config, metrics


def record_from_dir(run_dir: Path) -> dict | None:
    """The archive record of a finished run directory, or None if it holds no finished, readable run."""
    run_dir = Path(run_dir)
    try:
        config, metrics = finished_run(run_dir)
    except NmfdnnError:
        return None
    overrides = []
    ov = run_dir / ".hydra" / "overrides.yaml"
    try:
        loaded = OmegaConf.to_container(OmegaConf.create(read_text_checked(ov))) if ov.exists() else []
        overrides = [str(o) for o in loaded] if isinstance(loaded, list) else []
    except Exception:  # noqa: BLE001 (a damaged record of overrides: the record keeps none)
        overrides = []
    return {"name": run_dir.name, "overrides": overrides, "config": effective_config(config), "metrics": metrics}


def record_problem(r) -> str | None:
    """Why a parsed line of ``runs.jsonl`` is not a run record, or None."""
    if not (isinstance(r, dict) and isinstance(r.get("name"), str) and r["name"]):
        return "not a run record (no name)"
    if not isinstance(r.get("metrics"), dict):
        return "no metrics"
    return stored_config_problem(r.get("config"))


def read_runs(path: Path, warnings: list[str] | None = None, kept: list[str] | None = None) -> list[dict]:
    """The records of a ``runs.jsonl`` (read only if it is a regular file of bounded size); a line
    that is not a run record is skipped with a warning naming it, and handed back verbatim in
    ``kept`` so that a repack writes it again instead of losing it."""
    path = Path(path)
    out = []
    try:
        lines = read_text_checked(path).splitlines()
    except FileNotFoundError:
        return []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            problem = record_problem(r)
            if problem:
                raise ValueError(problem)
        except ValueError as e:
            msg = f"{path}:{i}: malformed run record ({str(e)[:200]}); skipped" + \
                ("" if kept is None else ", and kept in the file as it is")
            if warnings is None:
                log.warning(msg)
            else:
                warnings.append(msg)
            if kept is not None:
                kept.append(line)
            continue
        out.append(r)
    return out


def write_runs(path: Path, records: list[dict], kept: list[str] = ()) -> None:
    """``runs.jsonl``: the records sorted by name (stable bytes), then the ``kept`` lines that are not
    records, verbatim, so that nothing a repack could not read is lost."""
    text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n"
                   for r in sorted(records, key=lambda r: r["name"]))
    text += "".join(line.rstrip("\n") + "\n" for line in kept)
    atomic_write_bytes(Path(path), text.encode())


def run_dirs(study: Path) -> list[Path]:
    """The run directories of a study: ``study/runs/*`` that hold a ``metrics.json``."""
    root = Path(study) / RUNS_DIR
    return sorted(p.parent for p in root.glob("*/metrics.json")) if root.is_dir() else []


def pack(study: Path, warnings: list[str] | None = None) -> int:
    """Add every finished run under ``study/runs/`` to ``study/runs.jsonl`` (records of the same name are
    replaced by it: the run was redone); returns how many records were added or changed. Writes
    nothing if none was. Every other line stays, the ones that are not records included (written
    back verbatim after the records): a repack loses nothing, and a repack killed at any point leaves
    the old file or the new one (an atomic rename)."""
    study = Path(study)
    path = study / RUNS_FILE
    kept: list[str] = []
    records = read_runs(path, warnings, kept)
    changed = 0
    for d in run_dirs(study):
        rec = record_from_dir(d)
        if rec is None:
            continue
        same = [r for r in records if r["name"] == rec["name"]]
        if same == [rec]:
            continue
        records = [r for r in records if r["name"] != rec["name"]] + [rec]
        changed += 1
    if changed:
        write_runs(path, records, kept)
    return changed


def archived(run_dir: Path) -> dict | None:
    """The archived record of the run that would live in ``run_dir`` (``STUDY/runs/NAME``), if
    ``STUDY/runs.jsonl`` holds one named NAME; else None."""
    run_dir = Path(run_dir).absolute()
    if run_dir.parent.name != RUNS_DIR:
        return None
    found = [r for r in read_runs(run_dir.parent.parent / RUNS_FILE, warnings=[]) if r["name"] == run_dir.name]
    return found[-1] if found else None
