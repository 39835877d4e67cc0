"""``nmfdnn plot PATH...``: the paper's Figure 1 — convergence history (train and test error against
epoch and against seconds) of every group of runs (mean over seeds), one row per data set."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import NmfdnnError
from .report import SHOWN, _name_settings, collect, net_name


# The columns a legend tells groups apart by: a table's (report.SHOWN) but the dtype, which a legend
# does not show, so groups that differ in it name it in their label.
LEGEND_SHOWN = tuple(k for k in SHOWN if k != "dtype")


def parse_select(select: list[str] | None) -> list[tuple[str, object]]:
    """``--select KEY=VALUE`` items as ``(key, value)`` (VALUE read as YAML); a malformed one is a
    one-line :class:`NmfdnnError`."""
    import re

    import yaml

    out = []
    for item in select or []:
        key, sep, value = str(item).partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", key.strip()):
            raise NmfdnnError(f"--select {item!r}: expected KEY=VALUE, e.g. 'hidden=[1000,500]'")
        try:
            out.append((key.strip(), yaml.safe_load(value)))
        except yaml.YAMLError as e:
            raise NmfdnnError(f"--select {item!r}: the value is not YAML ({type(e).__name__})") from None
    return out


def _selected(config: dict, select: list[tuple[str, object]]) -> bool:
    """Whether a group's flattened config matches every ``(KEY, VALUE)`` of ``select``."""
    return all(config.get(key) == value for key, value in select)


def check_name(name: str) -> str:
    """``--name``: a plain file name stem (no folder, no ``..``), so that the figure stays in ``--out``."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", name or "") or ".." in name:
        raise NmfdnnError(f"--name {name!r}: a file name stem of letters, digits, '_', '-', '+' and '.' "
                          "(no folder, no '..'), e.g. fig1")
    return name


def _has(runs, key: str, n: int) -> bool:
    """Whether every run has a number for ``key`` in its first ``n`` epochs (``train_error`` is null
    in runs trained with ``eval_train=false``)."""
    return all(isinstance(h.get(key), (int, float)) for r in runs for h in r["history"][:n])


def _epoch_mean(runs, key: str, n: int) -> np.ndarray:
    """``history[k][key]`` averaged over ``runs`` for the first ``n`` epochs."""
    return np.mean([[h[key] for h in r["history"][:n]] for r in runs], axis=0)


def timed_seconds(paths) -> dict[tuple, np.ndarray]:
    """The per-epoch seconds (mean over its runs) of every group of finished runs under ``paths``, by
    group key: the seconds of runs timed on their own (``make table1-times``), for ``--seconds-from``."""
    groups, _ = collect(paths)
    out = {}
    for g in groups:
        runs = [r for r in g.runs if r.get("history")]
        if runs:
            n = min(len(r["history"]) for r in runs)
            out[g.key] = _epoch_mean(runs, "seconds", n)
    return out


def plot(paths, out: str | None = None, name: str = "fig1", select: list[str] | None = None,
         seconds_from: list[str] | None = None) -> list[Path]:
    """Figure 1 from the runs under ``paths``. With ``seconds_from``, a group's seconds axis takes the
    seconds of the matching group there (the same config but for the seed and the thread count), and
    every seconds label says where its seconds come from."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NmfdnnError("nmfdnn plot needs matplotlib: pip install 'nmfdnn[plot]'") from None
    chosen = parse_select(select)
    name = check_name(name)
    groups, warnings = collect(paths)
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    timed = timed_seconds(seconds_from) if seconds_from else {}
    source = ", ".join(Path(p).name for p in seconds_from or [])
    found = bool(groups)
    groups = [g for g in groups if _selected(g.config, chosen)]
    if found and not groups:
        raise NmfdnnError(f"--select {' '.join(select)}: no group of finished runs under "
                          f"{', '.join(map(str, paths))} matches")
    for g in groups:  # a run without its per-epoch history has no curve to draw
        g.runs = [r for r in g.runs if r.get("history")]
    groups = [g for g in groups if g.runs]
    if not groups:
        raise NmfdnnError(f"no finished runs under {', '.join(map(str, paths))}")
    datasets = sorted({g.config.get("dataset.name") for g in groups})
    named = [(g.stats(), g.config) for g in groups]
    _name_settings(named, LEGEND_SHOWN)  # groups of one solver and network: their differing keys in the label
    setting = {id(g): s.get("setting") for g, (s, _) in zip(groups, named)}
    fig, axes = plt.subplots(len(datasets), 2, figsize=(11, 4 * len(datasets)), squeeze=False)
    styles = {"train": "--", "test": "-"}
    for row, ds in enumerate(datasets):
        ax_ep, ax_s = axes[row]
        colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
        for g in sorted((g for g in groups if g.config.get("dataset.name") == ds),
                        key=lambda g: (g.config.get("solver.name"), net_name(g.config))):
            color = next(colors)  # one color per solver and network; train dashed, test solid
            label = f"{g.config.get('solver.name')} {net_name(g.config)}"
            if setting[id(g)]:
                label += f" ({setting[id(g)].replace('solver.', '')})"
            n_ep = min(len(r["history"]) for r in g.runs)
            epochs = np.arange(n_ep)
            secs = _epoch_mean(g.runs, "seconds", n_ep)
            s_label = ""
            if seconds_from:
                own = timed.get(g.key)
                if own is not None and len(own) >= n_ep:
                    secs, s_label = own[:n_ep], f" [s: {source}]"
                else:
                    s_label = " [s: own runs]"
            for split in ("train", "test"):
                if not _has(g.runs, f"{split}_error", n_ep):  # eval_train=false: no train curve
                    continue
                err = _epoch_mean(g.runs, f"{split}_error", n_ep)
                ax_ep.plot(epochs, err, styles[split], color=color, label=f"{label} {split}")
                ax_s.plot(secs, err, styles[split], color=color, label=f"{label} {split}{s_label}")
        for ax, xl in ((ax_ep, "epoch (0 = after pre-training)"), (ax_s, "training seconds")):
            ax.set_yscale("log")
            ax.set_xlabel(xl)
            ax.set_ylabel("error rate [%]")
            ax.set_title(f"{ds}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("Convergence history (mean over seeds)")
    fig.tight_layout()
    out_dir = Path(out) if out else Path(paths[0])
    if out_dir.exists() and not out_dir.is_dir():
        raise NmfdnnError(f"--out {out_dir} is a file, not a folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise NmfdnnError(f"cannot create the folder {out_dir}: {e.strerror}") from None
    files = []
    for ext in ("png", "svg"):
        f = out_dir / f"{name}.{ext}"
        # the same runs give the same bytes: no date in the SVG, its element ids from a fixed salt
        with plt.rc_context({"svg.hashsalt": "nmfdnn"}):
            fig.savefig(f, dpi=120, metadata={"Date": None} if ext == "svg" else None)
        files.append(f)
    plt.close(fig)
    return files


def build_parser():
    from . import Parser

    ap = Parser(prog="nmfdnn plot", description="Figure 1: train/test error against epoch and seconds "
                "(PNG and SVG).")
    ap.add_argument("paths", nargs="+", help="run, sweep or study directories (runs.jsonl)")
    ap.add_argument("--select", action="append", metavar="KEY=VALUE",
                    help="only the groups whose config has this value, e.g. 'hidden=[1000,500]' (repeatable)")
    ap.add_argument("--out", help="output folder (default: the first PATH)")
    ap.add_argument("--name", default="fig1", help="file name stem (default fig1)")
    ap.add_argument("--seconds-from", action="append", metavar="DIR",
                    help="take each group's seconds from the matching runs under DIR (runs timed alone, "
                    "e.g. outputs/table1-times); the labels say which seconds are whose (repeatable)")
    return ap


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    for f in plot(a.paths, a.out, a.name, a.select, a.seconds_from):
        print(f"wrote {f}")
    return 0
