"""Time to accuracy: wall time until the test error first drops below each target (``make bench-tta``).

With a validation split (``dataset.val_size=N``) the error is measured on those held-out training
samples instead, so that settings can be chosen by their time to accuracy without the test set
(the summary's ``split`` says which).

Each solver is trained through the loop of ``nmfdnn train`` (:func:`nmfdnn.loop.train_loop`)
(pre-training, then epochs of mini-batches); the PyTorch comparator through
:class:`nmfdnn.baselines.torch_mlp.TorchTrainer`, which has the same methods. The clock runs during pre-training and training only:
it is paused while the test error is measured, which happens after pre-training and then
``checks_per_epoch`` times per epoch, at evenly spaced batches (so NMF with 12 batches an epoch
and backprop with 600 are looked at equally often). Data loading and the host-to-backend copy are
outside the clock, the same for every solver.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from ..config import dtype_name
from ..config.network import build_network
from ..fileio import atomic_write_bytes, atomic_write_json
from .machine import blas_info, console, gemm_rate
from ..events import Listener
from ..loop import train_loop
from ..backend import backend_for
from ..data import training_arrays
from ..trainers import TRAINERS


class _Reached(Exception):
    pass


class _TTAHooks(Listener):
    """The clock and the checks of :func:`time_to_accuracy` around :func:`nmfdnn.loop.train_loop`: the
    clock runs from the start of pre-training and pauses while the test error is measured, after
    pre-training and every ``every`` batches (and at each epoch's last)."""

    def __init__(self, bk, error, targets, n_batches, every, reporter):
        self.bk, self.error, self.targets, self.reporter = bk, error, targets, reporter
        self.n_batches, self.every = n_batches, every
        self.seconds, self.t0 = 0.0, 0.0
        self.curve: list[dict] = []
        self.crossed: dict[float, dict] = {}
        self.pretrain_seconds = None

    def check(self, epochs_done: float, Ws):
        self.bk.synchronize()
        self.seconds += time.perf_counter() - self.t0
        err = self.error(Ws)
        point = {"seconds": self.seconds, "epochs": epochs_done, "error": err}
        self.curve.append(point)
        if self.reporter is not None:
            self.reporter(point)
        for t in self.targets:
            if err < t and t not in self.crossed:
                self.crossed[t] = point
        self.t0 = time.perf_counter()
        if self.targets[-1] in self.crossed:
            raise _Reached

    def pretrain_start(self):
        self.t0 = time.perf_counter()

    def pretrained(self, Ws, seconds):  # noqa: ARG002 (the clock is the hooks' own)
        self.pretrain_seconds = self.seconds + time.perf_counter() - self.t0
        self.check(0.0, Ws)

    def batch_done(self, epoch, b, Ws):
        if (b + 1) % self.every == 0 or b + 1 == self.n_batches:
            self.check(epoch - 1 + (b + 1) / self.n_batches, Ws)


def time_to_accuracy(cfg, data, targets, checks_per_epoch: int = 12, reporter=None,
                     framework: str = "nmfdnn") -> dict:
    """Train ``cfg`` for at most ``cfg.epochs`` epochs through the loop of ``nmfdnn train``
    (:func:`nmfdnn.loop.train_loop`); return, for each of ``targets`` (test error in percent), the
    training seconds and epochs until the test error is first below it (None if never), with the curve
    of (seconds, epochs, error). Training stops once the lowest target is reached. With a validation
    split (``data.val``) the error is the validation error (``split`` in the result says which).
    ``framework="torch"``: the same network by :class:`nmfdnn.baselines.torch_mlp.TorchTrainer`
    (``cfg`` a ``solver=bp`` config: its Adam settings, batch size and loss)."""
    targets = sorted((float(t) for t in targets), reverse=True)
    bk = backend_for(cfg)
    rng = np.random.default_rng(cfg.seed)
    X, Y, X_test = training_arrays(bk, data)
    split, held_out = ("test", data.test) if data.val is None else ("validation", data.val)
    X_test = X_test if data.val is None else bk.asarray(held_out.X)  # the error's inputs: the held-out split
    if framework == "torch":
        from ..baselines.torch_mlp import TorchTrainer

        trainer = TorchTrainer(cfg, bk.to_numpy(X), bk.to_numpy(Y), rng)
        X_test = trainer.samples(bk.to_numpy(X_test))  # once, not at every check

        def error(Ws):
            return trainer.test_error(Ws, X_test, held_out.labels)
    else:
        from ..method.network import evaluate

        net = build_network(cfg, data.n_in, data.shape, data.n_classes)
        trainer = TRAINERS[cfg.solver.name](bk, cfg, net, X, Y, rng)

        def error(Ws):
            return evaluate(bk, net, Ws, X_test, held_out.labels)[0]
    n_batches = trainer.n_batches
    hooks = _TTAHooks(bk, error, targets, n_batches, max(1, -(-n_batches // checks_per_epoch)), reporter)
    try:
        train_loop(trainer, bk, cfg.epochs, hooks)
    except _Reached:
        pass
    crossed, curve = hooks.crossed, hooks.curve
    return {
        "solver": "torch" if framework == "torch" else cfg.solver.name, "dtype": dtype_name(cfg),
        "loss": str(cfg.solver.get("loss", "")) or None, "hidden": list(cfg.hidden), "split": split,
        "targets": {f"{t:g}": ({"seconds": crossed[t]["seconds"], "epochs": crossed[t]["epochs"]}
                               if t in crossed else None) for t in targets},
        "error": curve[-1]["error"], "pretrain_seconds": hooks.pretrain_seconds, "max_epochs": cfg.epochs,
        "checks_per_epoch": checks_per_epoch, "curve": curve,
    }


# -- the comparison of several runs (nmfdnn bench --tta) ----------------------------------------

def run_tta(specs, targets, out_dir, gemm_n: int = 4000, repeats: int = 1) -> dict:
    """``make bench-tta``: time to accuracy (:func:`nmfdnn.tools.tta.time_to_accuracy`) of every run in
    ``specs`` (dicts with ``label``, ``cfg``, ``framework``), one after the other in this process,
    ``repeats`` rounds interleaved (so that a busy spell of a shared machine does not fall on one solver
    only), with the GEMM rate of each dtype measured before and after (the higher is reported); writes
    ``tta.json``. The summary gives, per run and target, the median seconds over the rounds (when every
    round reached it) and the ratios to the first ``bp`` run and to the first ``torch`` run."""
    import logging
    import statistics

    from ..backend import get_backend
    from ..config import dtype_name, validate
    from ..data import load_dataset
    from ..backend import blas_threads

    log = logging.getLogger("nmfdnn")
    cfgs = [s["cfg"] for s in specs]
    threads = cfgs[0].backend.get("threads")
    dtypes = sorted({dtype_name(c) for c in cfgs})
    with blas_threads(threads):
        rates = {dt: [gemm_rate(dt, n=gemm_n, bk=get_backend(cfgs[0].backend.name, dt))] for dt in dtypes}
    data = load_dataset(cfgs[0].dataset)
    for c in cfgs:  # the data-size checks of nmfdnn train, before any run
        validate(c, n_train=data.train.m)
    runs = []
    for rep in range(repeats):
        for k, spec in enumerate(specs):
            cfg, name = spec["cfg"], spec["label"]
            log.info("time to accuracy (round %d of %d): %s %s, targets %s %%", rep + 1, repeats, name,
                     list(cfg.hidden), ", ".join(f"{t:g}" for t in targets))
            with blas_threads(cfg.backend.get("threads")):
                r = time_to_accuracy(cfg, data, targets, framework=spec["framework"],
                                     reporter=lambda p, name=name: log.info(
                                         "  %s: %6.1f s  epoch %5.2f  %s %.2f %%", name, p["seconds"], p["epochs"],
                                         "val" if data.val is not None else "test", p["error"]))
            r.update(config=k, round=rep, label=name)
            runs.append(r)
    with blas_threads(threads):
        for dt in dtypes:
            rates[dt].append(gemm_rate(dt, n=gemm_n, bk=get_backend(cfgs[0].backend.name, dt)))
    summary = []
    for k, spec in enumerate(specs):
        mine = [r for r in runs if r["config"] == k]
        row = {"label": spec["label"], "solver": mine[0]["solver"], "dtype": mine[0]["dtype"],
               "loss": mine[0]["loss"], "hidden": mine[0]["hidden"], "rounds": len(mine),
               "median_pretrain_seconds": statistics.median(r["pretrain_seconds"] for r in mine),
               "final_error": [r["error"] for r in mine], "max_epochs": spec["cfg"].epochs, "targets": {}}
        for t in mine[0]["targets"]:
            hits = [r["targets"][t] for r in mine if r["targets"][t] is not None]
            row["targets"][t] = {"reached": len(hits), "seconds": [h["seconds"] for h in hits],
                                 "epochs": [h["epochs"] for h in hits],
                                 "median_seconds": statistics.median(h["seconds"] for h in hits)
                                 if len(hits) == len(mine) else None}
        summary.append(row)
    for ref in ("bp", "torch"):
        base = next((s for s in summary if s["solver"] == ref), None)
        for s in summary:
            for t, v in s["targets"].items():
                b = base["targets"][t]["median_seconds"] if base else None
                v[f"ratio_to_{ref}"] = v["median_seconds"] / b if b and v["median_seconds"] else None
    out = {"targets": [f"{t:g}" for t in targets], "repeats": repeats, "split": runs[0]["split"],
           "gemm_gflops": {dt: max(v) for dt, v in rates.items()},
           "gemm_gflops_before_after": rates, "n_train": data.train.m, "blas": blas_info(),
           "cpu_count": os.cpu_count(), "summary": summary, "runs": runs}
    atomic_write_json(Path(out_dir) / "tta.json", out)
    _write_tables(out_dir, out)
    return out


def _write_tables(out_dir, t: dict) -> None:
    atomic_write_bytes(Path(out_dir) / "tta.md", tta_markdown(t).encode())
    atomic_write_bytes(Path(out_dir) / "summary.md", tta_summary_markdown(t).encode())


def rewrite_tta_tables(out_dir) -> str:
    """``nmfdnn bench --tta --table DIR``: ``DIR/tta.md`` and ``summary.md`` again from ``DIR/tta.json``;
    returns the summary."""
    import json

    from ..errors import NmfdnnError

    f = Path(out_dir) / "tta.json"
    try:
        t = json.loads(f.read_text())
        _write_tables(out_dir, t)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise NmfdnnError(f"bench --tta --table: {f} is not a time-to-accuracy result "
                          f"({type(e).__name__}: {e})") from None
    return tta_summary_markdown(t)


def _tta_cells(s: dict, v: dict) -> list[str]:
    """One summary row's cells for one target (``v``): median, each round, epochs, ratios to torch and bp."""
    med = v["median_seconds"]
    return [f"{med:.1f}" if med is not None else f"reached in {v['reached']} of {s['rounds']}",
            " ".join(f"{x:.1f}" for x in v["seconds"]) or "—", " ".join(f"{e:.2f}" for e in v["epochs"]) or "—",
            f"{v['ratio_to_torch']:.2f}x" if v.get("ratio_to_torch") else "—",
            f"{v['ratio_to_bp']:.2f}x" if v.get("ratio_to_bp") else "—"]


def tta_markdown(t: dict) -> str:
    """The summary of :func:`run_tta` as a Markdown table, every round (``tta.md``)."""
    rates = ", ".join(f"{dt} {v:.1f}" for dt, v in t["gemm_gflops"].items())
    out = [f"Training seconds until the {t['split']} error is first below each target (median of {t['repeats']} "
           f"interleaved rounds; evaluation outside the clock; at most {max(s['max_epochs'] for s in t['summary'])} "
           f"epochs, stopped at the lowest target; "
           f"{t['cpu_count']} cores, GEMM GFLOP/s {rates}).", "",
           f"| run | target % | median s | each round s | epochs | vs torch | vs bp | {t['split']} % at stop |",
           "|---|---|---|---|---|---|---|---|"]
    for s in t["summary"]:
        for target, v in s["targets"].items():
            out.append("| " + " | ".join([s["label"], target, *_tta_cells(s, v),
                                           " ".join(f"{e:.2f}" for e in s["final_error"])]) + " |")
    return "\n".join(out) + "\n"


def tta_summary_markdown(t: dict) -> str:
    """The short form of :func:`tta_markdown` (``summary.md``, the README's table): one row per run, the
    median seconds to each target and its ratio to the first torch run (else to the first bp run)."""
    ref = next((r for r in ("torch", "bp") if any(s["solver"] == r for s in t["summary"])), None)
    head = ["run", *(f"to {x} % s" + (f" (x {ref})" if ref else "") for x in t["targets"]), "pre-training s"]
    out = [f"Time to {t['split']} error, median of {t['repeats']} interleaved rounds, {t['cpu_count']} cores "
           f"(every round: tta.md beside this file).", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for s in t["summary"]:
        cells = []
        for x in t["targets"]:
            v = s["targets"][x]
            r = v.get(f"ratio_to_{ref}") if ref else None
            med = v["median_seconds"]
            cells.append(f"{med:.1f} ({r:.2f}x)" if med and r else f"{med:.1f}" if med
                         else f"{v['reached']} of {s['rounds']} reached")
        out.append("| " + " | ".join([s["label"], *cells, f"{s['median_pretrain_seconds']:.1f}"]) + " |")
    return "\n".join(out) + "\n"


def print_tta(t: dict) -> None:
    from rich.table import Table

    c = console()
    rates = ", ".join(f"{dt} {v:.1f}" for dt, v in t["gemm_gflops"].items())
    tab = Table(title=f"time to {t['split']} error below {' and '.join(t['targets'])} %, median of {t['repeats']} "
                      f"interleaved round(s) (GEMM GFLOP/s: {rates})")
    for col in ("run", "hidden", "target %", "seconds", "each round", "epochs", "vs torch", "vs bp",
                f"{t['split']} % at stop", "pre-training s"):
        tab.add_column(col, justify="left" if col in ("run", "hidden") else "right")
    for s in t["summary"]:
        for i, (target, v) in enumerate(s["targets"].items()):
            first = i == 0  # the run's own columns once, on its first target's row
            tab.add_row(s["label"] if first else "", "-".join(map(str, s["hidden"])) if first else "", target,
                        *_tta_cells(s, v), " ".join(f"{e:.2f}" for e in s["final_error"]) if first else "",
                        f"{s['median_pretrain_seconds']:.1f}" if first else "")
    c.print(tab)


TTA_RUNS = "nmf_best:float32,nmf_best:float64,bp:float32,torch:float32:mse,torch:float32:xent"


def split_runs(runs: str) -> list[str]:
    """``--runs`` split at the commas outside brackets (a per-run ``hidden=[1000,500]`` keeps its comma)."""
    items, depth, cur = [], 0, ""
    for ch in runs:
        depth += {"[": 1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return [*items, cur]


def tta_specs(runs: str, overrides) -> list[dict]:
    """``--runs`` items ``NAME:DTYPE[:LOSS] [KEY=VALUE ...]`` as composed configs: NAME is ``nmf``, ``bp``,
    ``torch`` (the ``solver=bp`` config -- Adam settings, batch, loss -- run in PyTorch) or an experiment
    preset (``nmf_best``: ``experiment=nmf_best``); LOSS (bp, torch) sets ``solver.loss``; the
    space-separated overrides after it apply to that run only (after the common ``overrides``), e.g.
    ``nmf_best:float32 solver.ae_iters=2``. The label is the item itself."""
    from ..config import compose_config, conf_dir
    from ..errors import NmfdnnError

    presets = sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml"))
    specs = []
    for item in split_runs(runs):
        head, *own = item.split() or [""]
        parts = head.split(":")
        name = parts[0]
        if len(parts) not in (2, 3) or name not in ("nmf", "bp", "torch", *presets) or any("=" not in o for o in own):
            raise NmfdnnError(f"bench --tta: --runs takes items NAME:DTYPE[:LOSS] [KEY=VALUE ...] with NAME nmf, "
                              f"bp, torch or a preset ({', '.join(presets)}), e.g. {TTA_RUNS}; got {item!r}")
        if len(parts) == 3 and name == "nmf":
            raise NmfdnnError(f"bench --tta: LOSS is for bp and torch runs only; got {item!r}")
        first = [f"experiment={name}"] if name in presets else [f"solver={'bp' if name == 'torch' else name}"]
        extra = [f"solver.loss={parts[2]}"] if len(parts) == 3 else []
        cfg = compose_config([*first, "epochs=10", "progress=false", f"dtype={parts[1]}", *extra, *overrides, *own])
        specs.append({"label": " ".join([*parts, *own]), "cfg": cfg,
                      "framework": "torch" if name == "torch" else "nmfdnn"})
    if any(s["framework"] == "torch" for s in specs):
        from ..baselines.torch_mlp import import_torch

        import_torch()
    return specs


def _percentages(text: str) -> list[float]:
    """``--target``: comma-separated test errors in percent."""
    import argparse

    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid list of percentages: {text!r} (e.g. 2.0,1.6)") from None
