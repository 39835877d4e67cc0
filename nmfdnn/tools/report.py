"""``nmfdnn report PATH...``: group finished runs by config (all but the seed), and report mean and
95 % confidence interval (Student t, n - 1 degrees of freedom) of the error rates, and mean times."""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from ..archive import RUNS_DIR, RUNS_FILE, finished_run, metrics_problem, pack, read_runs
from ..config import NON_RESULT_KEYS, compose_config, effective
from ..config.identity import ADDED_KEYS, loss_name, net_name
from ..errors import NmfdnnError
from ..fileio import atomic_write_bytes, atomic_write_json

log = logging.getLogger("nmfdnn")

# Keys that do not change what a run computes, and the replicate index: they do not split groups.
IGNORED = {"seed", *NON_RESULT_KEYS}
# The keys effective() leaves out while they hold their off value, flattened: what a missing one means
AS_BEFORE = {".".join(path): before for path, before in ADDED_KEYS.items()}


def t_interval(values) -> tuple[float, float]:
    """Mean and half-width of the 95 % Student-t confidence interval (n - 1 degrees of freedom);
    half-width NaN for a single value."""
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:  # e.g. train errors of runs trained with eval_train=false
        return float("nan"), float("nan")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan")
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, half


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


@dataclass
class Group:
    key: tuple
    config: dict
    runs: list = field(default_factory=list)

    def stats(self) -> dict:
        col = lambda k: [r[k] for r in self.runs if r.get(k) is not None]  # noqa: E731
        tr, tr_ci = t_interval(col("train_error"))
        te, te_ci = t_interval(col("test_error"))
        va, va_ci = t_interval(col("val_error")) if col("val_error") else (None, None)
        mean = lambda k: float(np.mean(col(k))) if col(k) else float("nan")  # noqa: E731
        return {"dataset": self.config.get("dataset.name"), "solver": self.config.get("solver.name"),
                "hidden": net_name(self.config),
                "dtype": self.config.get("dtype"), "backend": self.config.get("backend.name"),
                "epochs": self.config.get("epochs"), "n": len(self.runs),
                "train_error": tr, "train_ci": tr_ci, "val_error": va, "val_ci": va_ci, "test_error": te,
                "test_ci": te_ci,
                "pretrain_seconds": mean("pretrain_seconds"), "finetune_seconds": mean("finetune_seconds"),
                "total_seconds": mean("total_seconds"), "seeds": sorted(r.get("seed") for r in self.runs),
                "n_train": int(np.max(col("n_train"))) if col("n_train") else None,
                **({"loss": loss_name(self.config.get("solver.loss", "mse"))}
                   if self.config.get("solver.name") == "bp" else {})}


def _records(path: Path, warnings: list[str]) -> list[tuple[dict, dict, str]]:
    """(config, metrics, where) of every finished run under ``path``: the records of each study's
    ``runs.jsonl``, and every run directory (``metrics.json`` + ``config.yaml``) not yet packed there.
    A run that cannot be counted (unfinished, damaged, a config that does not fit the schema, a
    non-finite error) is left out with one warning naming the file and the field."""
    if path.is_file() and path.name == "metrics.json":
        files, stores = [path], []
    elif path.exists() and not path.is_dir():
        files, stores = [], [path]
    else:
        files = sorted(p for p in path.rglob("metrics.json") if RUNS_FILE not in p.parts)
        stores = sorted(path.rglob(RUNS_FILE))
    out, packed = [], set()
    for store in stores:
        try:
            records = read_runs(store, warnings)
        except NmfdnnError as e:
            warnings.append(f"{e}; skipped")
            continue
        for r in records:
            problem = metrics_problem(r["metrics"]) if r["metrics"].get("status", "finished") == "finished" else \
                f"status {r['metrics'].get('status')!r}, not finished"
            if problem:
                warnings.append(f"{store}:{r['name']}: {problem}; skipped")
                continue
            out.append((r["config"], r["metrics"], f"{store}:{r['name']}"))
            packed.add((store.parent / RUNS_DIR / r["name"]).resolve())
    for f in files:
        if f.parent.resolve() in packed:
            continue
        try:
            config, m = finished_run(f.parent)
        except NmfdnnError as e:
            warnings.append(f"{e}; skipped")
            continue
        out.append((config, m, str(f.parent)))
    return out


def run_identity(config: dict) -> str:
    """What makes two records the same run: the effective config with its seed, without the keys that
    never change a result (:data:`NON_RESULT_KEYS`). One run reached twice (a study and one of its run
    folders, ``dir`` and ``dir/``, a line duplicated in ``runs.jsonl``) has one identity."""
    flat = _flatten(effective(config))
    return json.dumps({k: v for k, v in flat.items() if k not in NON_RESULT_KEYS}, sort_keys=True)


def collect(paths) -> tuple[list[Group], list[str]]:
    """Finished runs under ``paths`` (run directories, study folders with ``runs.jsonl``) grouped by
    config, each run counted once however often it is reached; also the warnings for skipped and
    duplicated runs."""
    groups: dict[tuple, Group] = {}
    warnings: list[str] = []
    seen: dict[str, str] = {}
    duplicates = []
    for p in paths:
        p = Path(p)
        if not p.exists() and not p.is_symlink():
            raise NmfdnnError(f"{p}: no such file or directory")
        for config, m, where in _records(p, warnings):
            ident = run_identity(config)
            if ident in seen:
                duplicates.append((where, seen[ident]))
                continue
            seen[ident] = where
            flat = _flatten(effective(config))
            key = tuple(sorted((k, json.dumps(v)) for k, v in flat.items() if k not in IGNORED))
            g = groups.setdefault(key, Group(key, flat))
            g.runs.append(m)
    if duplicates:
        where, first = duplicates[0]
        warnings.append(f"{len(duplicates)} duplicate record(s) of runs already counted dropped (the same config "
                        f"and seed; first: {where}, the same run as {first}): each run is counted once")
    return list(groups.values()), warnings


def load_paper_table(name: str = "paper-table1") -> list[dict]:
    try:
        text = resources.files("nmfdnn.references").joinpath(f"{name}.csv").read_text()
    except FileNotFoundError:
        raise NmfdnnError(f"unknown reference table {name!r} (known: paper-table1)") from None
    rows = list(csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#")))
    for r in rows:
        for k in ("train_error", "train_ci", "test_error", "test_ci", "seconds"):
            r[k] = float(r[k])
    return rows


def _fmt(mean, ci, digits=2):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    if ci is None or math.isnan(ci):
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {ci:.{digits + 1}f}"


# The paper's stated setting for its MNIST rows (Sec. 5): the keys it states, with the values of the
# presets that transcribe it (experiment=paper, experiment=paper_bp_mnist), composed, not retyped.
# `report --compare` names every such key in which a group differs; keys the paper does not state
# (e.g. solver.ae_nmf_iters, pinned in the presets at a value marked "not stated") are not listed.
PAPER_PRESETS = {"nmf": "paper", "bp": "paper_bp_mnist"}
STATED_KEYS = {
    "nmf": ["epochs", "dtype", "dataset.train_subset", "dataset.val_size", "solver.ae_iters", "solver.ae_lsq_iters",
            "solver.lsq_iters", "solver.input_threshold", "solver.batch_size", "solver.ae_samples",
            "solver.input_pinv", "solver.pinv", "solver.bias", "solver.alpha", "solver.beta", "solver.lam",
            "solver.safeguard", "solver.layer_omega"],
    "bp": ["epochs", "dataset.train_subset", "dataset.val_size", "solver.batch_size", "solver.lr", "solver.ae_lr",
           "solver.ae_samples", "solver.beta1", "solver.beta2", "solver.eps"],
}


@functools.lru_cache(maxsize=None)
def paper_setting(solver: str) -> dict:
    """``{key: value}`` of the paper's stated setting for ``solver``, from its preset."""
    if solver not in PAPER_PRESETS:
        return {}
    cfg = compose_config([f"experiment={PAPER_PRESETS[solver]}"])
    flat = _flatten(effective(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)))
    return {k: flat[k] for k in STATED_KEYS[solver]}


def paper_differences(config: dict) -> list[str]:
    """``key=ours (paper: theirs)`` for every stated key of the paper's setting that ``config`` changes."""
    out = []
    for key, theirs in paper_setting(config.get("solver.name")).items():
        ours = config.get(key, theirs)
        same = ours == theirs or (isinstance(ours, float) and isinstance(theirs, float) and math.isclose(ours, theirs))
        if not same:
            out.append(f"{key}={ours} (paper: {theirs})")
    return out


def build_rows(groups, compare: str | None = None):
    pairs = sorted(((g.stats(), g.config) for g in groups),
                   key=lambda rc: (rc[0]["dataset"] or "", rc[0]["solver"] or "", len(rc[0]["hidden"]), rc[0]["hidden"]))
    rows = [r for r, _ in pairs]
    _name_settings(pairs)
    paper = {(r["solver"], r["hidden"]): r for r in load_paper_table(compare)} if compare else {}
    for r, config in pairs:
        ref = paper.get((r["solver"], r["hidden"])) if r["dataset"] == "mnist" else None
        r["paper"] = ref
        r["paper_differences"] = paper_differences(config) if ref is not None else []
        r["paper_setting"] = ref is not None and not r["paper_differences"]
        if ref is not None:
            r["test_diff"] = r["test_error"] - ref["test_error"]
            r["train_diff"] = r["train_error"] - ref["train_error"]
            r["versus_paper"] = versus(r["test_error"], r["test_ci"], ref["test_error"], ref["test_ci"])
    return rows


SHOWN = ("dataset", "solver", "hidden", "dtype", "epochs")


def _name_settings(pairs, shown=SHOWN) -> None:
    """Groups that the table's columns cannot tell apart (the same data set, solver, network, dtype and
    epochs, e.g. a paper preset and a tuned one) get ``setting``: the keys in which they differ; ``shown``:
    the columns that tell groups apart (a figure's legend shows fewer)."""
    by_shown: dict = {}
    for r, config in pairs:
        by_shown.setdefault(tuple(r[k] for k in shown), []).append((r, config))
    for same in by_shown.values():
        if len(same) < 2:
            continue
        keys = sorted({k for _, c in same for k in c} - IGNORED)
        value = lambda c, k: c.get(k, AS_BEFORE.get(k))  # noqa: E731 (a key left out of effective())
        differing = [k for k in keys if len({repr(value(c, k)) for _, c in same}) > 1]
        for r, c in same:
            r["setting"] = " ".join(f"{k}={value(c, k)}" for k in differing)


def versus(mean: float, ci, paper_mean: float, paper_ci: float) -> str:
    """Our test error against the paper's, by their 95 % intervals: ``better`` (ours lies wholly below
    the paper's), ``worse`` (wholly above) or ``overlaps``; a single run (no interval) counts as a point."""
    ci = 0.0 if ci is None or math.isnan(ci) else ci
    if mean + ci < paper_mean - paper_ci:
        return "better"
    if mean - ci > paper_mean + paper_ci:
        return "worse"
    return "overlaps"


HEAD = ["dataset", "solver", "hidden", "dtype", "epochs", "n", "train error %", "test error %",
        "pre-train s", "fine-tune s", "total s"]


def _head(rows) -> list[str]:
    """The columns; "val error %" only when some group has a validation split (dataset.val_size), and
    "setting" only when some groups differ in keys no other column shows (:func:`_name_settings`)."""
    head = HEAD[:7] + ["val error %"] + HEAD[7:] if any(r.get("val_error") is not None for r in rows) else HEAD
    return head + (["setting"] if any(r.get("setting") for r in rows) else [])


def _cells(r, with_val=False, with_setting=False):
    val = [_fmt(r.get("val_error"), r.get("val_ci"))] if with_val else []
    solver = str(r["solver"]) + (" (cross-entropy)" if r.get("loss") == "cross_entropy" else "")
    return [str(r["dataset"]), solver, r["hidden"], str(r["dtype"]), str(r["epochs"]), str(r["n"]),
            _fmt(r["train_error"], r["train_ci"]), *val, _fmt(r["test_error"], r["test_ci"]),
            f"{r['pretrain_seconds']:.1f}", f"{r['finetune_seconds']:.1f}", f"{r['total_seconds']:.1f}",
            *([r.get("setting") or "—"] if with_setting else [])]


def _paper_cells(r):
    p = r.get("paper")
    if p is None:
        return ["—"] * len(PAPER_HEAD)
    return [_fmt(p["train_error"], p["train_ci"]), _fmt(p["test_error"], p["test_ci"]), f"{p['seconds']:.0f}",
            f"{r['test_diff']:+.2f}", r["versus_paper"]]


PAPER_HEAD = ["paper train %", "paper test %", "paper s", "test diff", "test vs paper"]


def write_reports(rows, out_dir: Path, compare: bool):
    head = _head(rows) + (PAPER_HEAD if compare else [])
    with_val, with_setting = "val error %" in head, "setting" in head
    body = [_cells(r, with_val, with_setting) + (_paper_cells(r) if compare else []) for r in rows]
    md = "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
    md += "".join("| " + " | ".join(c) + " |\n" for c in body)
    differing = [r for r in rows if r.get("paper_differences")] if compare else []
    if differing:
        md += "\nDifferences from the paper's stated setting:\n\n"
        md += "".join(f"- {r['solver']} {r['hidden']} ({r['dtype']}, n={r['n']}, test {_fmt(r['test_error'], r['test_ci'])}): "
                      f"{', '.join(r['paper_differences'])}\n" for r in differing)
    atomic_write_bytes(out_dir / "report.md", md.encode())
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    keys = ["dataset", "solver", "hidden", "dtype", "backend", "epochs", "n", "train_error", "train_ci",
            *(["val_error", "val_ci"] if with_val else []), "test_error", "test_ci", "pretrain_seconds",
            "finetune_seconds", "total_seconds", *(["setting"] if with_setting else [])]
    w.writerow(keys + (["paper_train_error", "paper_train_ci", "paper_test_error", "paper_test_ci", "paper_seconds",
                        "versus_paper"] if compare else []))
    for r in rows:
        extra = []
        if compare:
            p = r.get("paper") or {}
            extra = [p.get("train_error", ""), p.get("train_ci", ""), p.get("test_error", ""), p.get("test_ci", ""),
                     p.get("seconds", ""), r.get("versus_paper", "")]
        w.writerow([r.get(k, "") for k in keys] + extra)
    atomic_write_bytes(out_dir / "report.csv", buf.getvalue().encode())
    esc = lambda s: s.replace("±", "$\\pm$").replace("%", "\\%").replace("_", "\\_").replace("—", "--")  # noqa: E731
    tex = "\\begin{tabular}{" + "l" * 5 + "r" * (len(head) - 5) + "}\n\\hline\n"
    tex += " & ".join(esc(h) for h in head) + " \\\\\n\\hline\n"
    tex += "".join(" & ".join(esc(c) for c in cells) + " \\\\\n" for cells in body)
    tex += "\\hline\n\\end{tabular}\n"
    atomic_write_bytes(out_dir / "report.tex", tex.encode())
    atomic_write_json(out_dir / "report.json", rows)


def print_table(rows, compare: bool, warnings):
    from rich.console import Console
    from rich.table import Table

    c = Console() if Console().is_terminal else Console(width=200)
    for w in warnings:
        c.print(f"[yellow]warning:[/yellow] {w}")
    t = Table(title="nmfdnn report" + (" (beside the paper's Table 1)" if compare else ""))
    head = _head(rows) + (PAPER_HEAD if compare else [])
    for h in head:
        t.add_column(h, justify="right" if h not in ("dataset", "solver", "hidden", "dtype") else "left")
    for r in rows:
        t.add_row(*(_cells(r, "val error %" in head, "setting" in head) + (_paper_cells(r) if compare else [])))
    c.print(t)
    other = [r for r in rows if r.get("paper") is not None and not r.get("paper_setting")]
    for r in other:
        c.print(f"note: {r['solver']} {r['hidden']} differs from the paper's stated setting in "
                f"{', '.join(r['paper_differences'])}")
    if other:
        c.print(f"note: {len(other)} group(s) differ from the paper's stated setting: their differences to the "
                "paper's rows are not like-for-like.")
    singles = [r for r in rows if r["n"] == 1]
    if singles:
        c.print(f"{len(singles)} group(s) have a single run: no confidence interval (n=1).")


def report(paths, compare: str | None = None, out: str | None = None) -> list[dict]:
    pack_warnings: list[str] = []
    for p in paths:  # a study folder: its finished run directories go into its runs.jsonl first
        if Path(p).is_dir() and (Path(p) / RUNS_DIR).is_dir():
            try:
                n = pack(Path(p), pack_warnings)
            except NmfdnnError as e:  # e.g. a runs.jsonl that is not a regular file: report the rest
                log.warning("%s; %s not repacked", e, p)
                n = 0
            if n:
                log.info("%s: %d run(s) packed into %s", p, n, RUNS_FILE)
                kept = [w for w in pack_warnings if "kept in the file" in w]
                if kept:
                    log.warning("%s: %d line(s) that are not run records kept in %s as they were (first: %s)",
                                p, len(kept), RUNS_FILE, kept[0].split(": malformed")[0])
            pack_warnings.clear()
    groups, warnings = collect(paths)
    for w in warnings:
        log.warning(w)
    if not groups:
        raise NmfdnnError(f"no finished runs under {', '.join(map(str, paths))}")
    rows = build_rows(groups, compare)
    out_dir = Path(out) if out else Path(paths[0]) if Path(paths[0]).is_dir() else Path(paths[0]).parent
    if out_dir.exists() and not out_dir.is_dir():
        raise NmfdnnError(f"--out {out_dir} is a file, not a folder")
    write_reports(rows, out_dir, bool(compare))
    print_table(rows, bool(compare), warnings)
    return rows


def build_parser():
    from . import Parser

    ap = Parser(prog="nmfdnn report", description="Group finished runs by config (all but the seed and the "
                "keys that do not change a result) and report error rates with 95 % t intervals and mean times.")
    ap.add_argument("paths", nargs="+", help="run, sweep or output directories (searched for metrics.json)")
    ap.add_argument("--compare", metavar="TABLE", choices=["paper-table1"],
                    help="print a reference table beside ours: paper-table1")
    ap.add_argument("--out", help="where report.{md,csv,tex,json} go (default: the first PATH)")
    return ap


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    report(a.paths, a.compare, a.out)
    return 0
