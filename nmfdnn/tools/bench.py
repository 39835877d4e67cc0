"""``nmfdnn bench [OVERRIDES]``: this machine's GEMM rate, then a short training run, per phase:
seconds, floating-point operations, GFLOP/s and the ratio to the measured GEMM rate.

FLOPs are those the run executes, counted per phase through the backend seam
(:mod:`nmfdnn.tools.flops`): ``2 m n k`` per matrix product, ``n^2 m`` per Gram product, ``p^3/3`` per
Cholesky factorisation, ``q p^2`` per triangular solve. Eigendecompositions, SVDs and element-wise
work are *not* counted (their time is), so each rate is a lower bound of the arithmetic of a phase.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_json


def gemm_rate(dtype: str, n: int = 4000, repeats: int = 3, bk=None) -> float:
    """Best-of-``repeats`` GFLOP/s of an ``n x n`` by ``n x n`` product in ``dtype`` on the backend."""
    from ..backend import get_backend

    bk = bk or get_backend("numpy", dtype)
    rng = np.random.default_rng(0)
    A, B = bk.asarray(rng.random((n, n))), bk.asarray(rng.random((n, n)))
    C = A @ B  # warm-up
    best = float("inf")
    for _ in range(repeats):
        bk.synchronize()
        t0 = time.perf_counter()
        bk.xp.matmul(A, B, out=C)
        bk.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def shape_rates(hidden: list[int], n_in: int, batch: int, dtype: str, gemm_n: int = 4000, repeats: int = 5) -> dict:
    """GFLOP/s of the fine-tuning's own matrix products for ``hidden`` (the forward products, Algorithm
    2's ``R Z^T``, Algorithm 3's ``W^dagger R``, the Gram products) on random data, best of ``repeats``,
    next to an ``gemm_n`` square product in the same process: the ceiling that the method's share of
    the GEMM rate can reach on this machine and BLAS."""
    from ..backend import get_backend

    bk = get_backend("numpy", dtype)
    rng = np.random.default_rng(0)

    def best(f):
        f()
        out = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            f()
            out = min(out, time.perf_counter() - t0)
        return out

    n = [n_in] + list(hidden)
    rows = []
    for i in range(1, len(n)):
        q, p = n[i], n[i - 1]
        W, Z, R = (bk.asarray(rng.random(s)) for s in ((q, p), (p, batch), (q, batch)))
        Wp = bk.asarray(rng.random((p, q)))
        for name, f, fl in ((f"W_{i} Z_{i - 1}  ({q}x{p} by {p}x{batch})", lambda: W @ Z, 2 * q * p * batch),
                            (f"R_{i} Z_{i - 1}^T  ({q}x{batch} by {batch}x{p})", lambda: R @ Z.T, 2 * q * p * batch),
                            (f"W_{i}^+ R_{i}  ({p}x{q} by {q}x{batch})", lambda: Wp @ R, 2 * q * p * batch),
                            (f"Z_{i - 1} Z_{i - 1}^T  (Gram, {p}x{batch})", lambda: Z @ Z.T, p * p * batch)):
            rows.append({"product": name, "gflops": fl / best(f) / 1e9})
    rate = gemm_rate(dtype, n=gemm_n, bk=bk)
    for r in rows:
        r["ratio_to_gemm"] = r["gflops"] / rate
    return {"dtype": dtype, "gemm_gflops": rate, "gemm_n": gemm_n, "batch": batch, "products": rows}


def print_shape_rates(r: dict) -> None:
    from rich.table import Table

    c = _console()
    t = Table(title=f"products of the method, {r['dtype']}, batch {r['batch']} "
                    f"({r['gemm_n']}x{r['gemm_n']} GEMM: {r['gemm_gflops']:.1f} GFLOP/s)")
    for col in ("product", "GFLOP/s", "of GEMM"):
        t.add_column(col, justify="left" if col == "product" else "right")
    for row in r["products"]:
        t.add_row(row["product"], f"{row['gflops']:.1f}", f"{row['ratio_to_gemm']:.0%}")
    c.print(t)


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def blas_info() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return []
    return [{k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for i in threadpool_info() if i.get("user_api") == "blas"]


FINETUNE_PHASES = ("forward", "semi_nmf", "pinv", "alg2", "alg3", "batch_pinv", "gather", "backprop", "adam")


def counted_fit(cfg, data, reporter=None):
    """Train ``cfg`` on the FLOP-counting NumPy backend (:mod:`nmfdnn.tools.flops`): the same run,
    with the operations of every phase counted. Returns ``(result, flops per phase)``."""
    from ..train import backend_for, fit
    from .flops import PhaseFlops, counting_backend

    bk = counting_backend(backend_for(cfg, "numpy"))
    counter = PhaseFlops(bk)
    with counter.counting():
        result = fit(cfg, data, reporter, bk=bk, timers=counter)
    return result, dict(counter.flops)


def bench(cfg, out_dir, reporter=None, gemm_n: int = 4000) -> dict:
    """Measure the GEMM rate, train ``cfg`` (normally a short run) and write ``bench.json``.

    On the NumPy backend the timed run itself counts its FLOPs; on a GPU the FLOPs are those of the
    same config run on the CPU (the same products) and the seconds those of the GPU run."""
    from omegaconf import OmegaConf

    from ..backend import get_backend
    from ..config import dtype_name
    from ..data import load_dataset
    from ..train import blas_threads, fit

    dtype = dtype_name(cfg)
    data = load_dataset(cfg.dataset)
    with blas_threads(cfg.backend.get("threads")):
        bk = get_backend(cfg.backend.name, dtype)
        # The machine's rate is measured before and after the run and the higher one is used: on a
        # shared machine a single measurement can catch a busy moment and flatter the ratio.
        rate_before = gemm_rate(dtype, n=gemm_n, bk=bk)
        if cfg.backend.name == "numpy":
            result, flops = counted_fit(cfg, data, reporter)
        else:
            result = fit(cfg, data, reporter)
            cpu = OmegaConf.merge(cfg, {"backend": {"name": "numpy"}})
            _, flops = counted_fit(cpu, data)
        rate_after = gemm_rate(dtype, n=gemm_n, bk=bk)
    rate = max(rate_before, rate_after)
    rows = {}
    for k, sec in result.phases.items():
        fl = flops.get(k) or None
        rows[k] = {"seconds": sec, "gflop": fl / 1e9 if fl else None,
                   "gflops": fl / sec / 1e9 if fl and sec > 0 else None,
                   "ratio_to_gemm": fl / sec / 1e9 / rate if fl and sec > 0 else None}
    ft = sum(v for k, v in flops.items() if k in FINETUNE_PHASES)
    epoch_rate = ft / result.finetune_seconds / 1e9 if ft and result.finetune_seconds > 0 else None
    out = {
        "gemm_gflops": rate, "gemm_gflops_before": rate_before, "gemm_gflops_after": rate_after, "dtype": dtype,
        "backend": cfg.backend.name, "hidden": list(cfg.hidden),
        "solver": cfg.solver.name, "epochs": cfg.epochs, "n_train": data.train.m,
        "batch_size": cfg.solver.batch_size,
        "pretrain_seconds": result.pretrain_seconds, "finetune_seconds": result.finetune_seconds,
        "epoch_seconds": result.finetune_seconds / max(cfg.epochs, 1),
        "finetune_gflop": ft / 1e9 if ft else None, "finetune_gflops": epoch_rate,
        "finetune_ratio_to_gemm": epoch_rate / rate if epoch_rate else None,
        "test_error": result.history[-1]["test_error"], "peak_rss_gib": peak_rss_gib(),
        "blas": blas_info(), "cpu_count": os.cpu_count(), "phases": rows,
        "flops_counted": {k: v for k, v in sorted(flops.items())},
    }
    atomic_write_json(Path(out_dir) / "bench.json", out)
    return out


def _console():
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=160)


def print_bench(b: dict) -> None:
    from rich.table import Table

    c = _console()
    t = Table(title=f"nmfdnn bench: {b['solver']} {b['hidden']} {b['dtype']} on {b['backend']} "
                    f"(GEMM {b['gemm_gflops']:.1f} GFLOP/s)")
    for col in ("phase", "seconds", "GFLOP", "GFLOP/s", "of GEMM"):
        t.add_column(col, justify="left" if col == "phase" else "right")
    for k, r in sorted(b["phases"].items(), key=lambda kv: -kv[1]["seconds"]):
        fmt = lambda v, s: "—" if v is None else s.format(v)  # noqa: E731
        t.add_row(k, f"{r['seconds']:.2f}", fmt(r.get("gflop"), "{:.1f}"), fmt(r.get("gflops"), "{:.1f}"),
                  fmt(r.get("ratio_to_gemm"), "{:.0%}"))
    c.print(t)
    line = f"fine-tuning: {b['epoch_seconds']:.2f} s/epoch"
    if b.get("finetune_gflops"):
        line += f", {b['finetune_gflops']:.1f} GFLOP/s = {b['finetune_ratio_to_gemm']:.0%} of GEMM"
    c.print(line + f"; peak memory {b['peak_rss_gib']:.2f} GiB; BLAS {json.dumps(b['blas'])}")


def scaling_table(paths) -> str:
    """A markdown table (one row per bench.json under ``paths``): network, batch, dtype, seconds per
    fine-tuning epoch, pre-training seconds, share of GEMM and peak memory."""
    files = sorted(f for p in paths for f in Path(p).rglob("bench.json"))
    rows = [json.loads(f.read_text()) for f in files]
    rows.sort(key=lambda b: (b["dtype"], b.get("batch_size") or 0, len(b["hidden"]), b["hidden"]))
    out = ["| hidden | batch | dtype | fine-tuning s/epoch | pre-training s | GFLOP/s | of GEMM | peak memory GiB |",
           "|---|---|---|---|---|---|---|---|"]
    for b in rows:
        rate = f"{b['finetune_gflops']:.1f}" if b.get("finetune_gflops") else "—"
        share = f"{b['finetune_ratio_to_gemm']:.0%}" if b.get("finetune_ratio_to_gemm") else "—"
        out.append(f"| {'-'.join(map(str, b['hidden']))} | {b.get('batch_size', '—')} | {b['dtype']} | "
                   f"{b['epoch_seconds']:.2f} | {b['pretrain_seconds']:.1f} | {rate} | {share} | {b['peak_rss_gib']:.2f} |")
    return "\n".join(out)


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
    from ..config import dtype_name
    from ..data import load_dataset
    from ..train import blas_threads
    from .tta import time_to_accuracy

    log = logging.getLogger("nmfdnn")
    cfgs = [s["cfg"] for s in specs]
    threads = cfgs[0].backend.get("threads")
    dtypes = sorted({dtype_name(c) for c in cfgs})
    with blas_threads(threads):
        rates = {dt: [gemm_rate(dt, n=gemm_n, bk=get_backend(cfgs[0].backend.name, dt))] for dt in dtypes}
    data = load_dataset(cfgs[0].dataset)
    runs = []
    for rep in range(repeats):
        for k, spec in enumerate(specs):
            cfg, name = spec["cfg"], spec["label"]
            log.info("time to accuracy (round %d of %d): %s %s, targets %s %%", rep + 1, repeats, name,
                     list(cfg.hidden), ", ".join(f"{t:g}" for t in targets))
            with blas_threads(cfg.backend.get("threads")):
                r = time_to_accuracy(cfg, data, targets, framework=spec["framework"],
                                     reporter=lambda p, name=name: log.info(
                                         "  %s: %6.1f s  epoch %5.2f  test %.2f %%", name, p["seconds"], p["epochs"],
                                         p["test_error"]))
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
               "final_test_error": [r["test_error"] for r in mine], "max_epochs": spec["cfg"].epochs, "targets": {}}
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
    out = {"targets": [f"{t:g}" for t in targets], "repeats": repeats,
           "gemm_gflops": {dt: max(v) for dt, v in rates.items()},
           "gemm_gflops_before_after": rates, "n_train": data.train.m, "blas": blas_info(),
           "cpu_count": os.cpu_count(), "summary": summary, "runs": runs}
    atomic_write_json(Path(out_dir) / "tta.json", out)
    atomic_write_bytes(Path(out_dir) / "tta.md", tta_markdown(out).encode())
    return out


def _tta_cells(s: dict, v: dict) -> list[str]:
    """One summary row's cells for one target (``v``): median, each round, epochs, ratios to torch and bp."""
    med = v["median_seconds"]
    return [f"{med:.1f}" if med is not None else f"reached in {v['reached']} of {s['rounds']}",
            " ".join(f"{x:.1f}" for x in v["seconds"]) or "—", " ".join(f"{e:.2f}" for e in v["epochs"]) or "—",
            f"{v['ratio_to_torch']:.2f}x" if v.get("ratio_to_torch") else "—",
            f"{v['ratio_to_bp']:.2f}x" if v.get("ratio_to_bp") else "—"]


def tta_markdown(t: dict) -> str:
    """The summary of :func:`run_tta` as a Markdown table (``tta.md``, embedded in the README)."""
    rates = ", ".join(f"{dt} {v:.1f}" for dt, v in t["gemm_gflops"].items())
    out = [f"Training seconds until the test error is first below each target (median of {t['repeats']} "
           f"interleaved rounds; evaluation outside the clock; at most {max(s['max_epochs'] for s in t['summary'])} "
           f"epochs, stopped at the lowest target; "
           f"{t['cpu_count']} cores, GEMM GFLOP/s {rates}).", "",
           "| run | target % | median s | each round s | epochs | vs torch | vs bp | test % at stop |",
           "|---|---|---|---|---|---|---|---|"]
    for s in t["summary"]:
        for target, v in s["targets"].items():
            out.append("| " + " | ".join([s["label"], target, *_tta_cells(s, v),
                                           " ".join(f"{e:.2f}" for e in s["final_test_error"])]) + " |")
    return "\n".join(out) + "\n"


def print_tta(t: dict) -> None:
    from rich.table import Table

    c = _console()
    rates = ", ".join(f"{dt} {v:.1f}" for dt, v in t["gemm_gflops"].items())
    tab = Table(title=f"time to test error below {' and '.join(t['targets'])} %, median of {t['repeats']} "
                      f"interleaved round(s) (GEMM GFLOP/s: {rates})")
    for col in ("run", "hidden", "target %", "seconds", "each round", "epochs", "vs torch", "vs bp",
                "test % at stop", "pre-training s"):
        tab.add_column(col, justify="left" if col in ("run", "hidden") else "right")
    for s in t["summary"]:
        for i, (target, v) in enumerate(s["targets"].items()):
            first = i == 0  # the run's own columns once, on its first target's row
            tab.add_row(s["label"] if first else "", "-".join(map(str, s["hidden"])) if first else "", target,
                        *_tta_cells(s, v), " ".join(f"{e:.2f}" for e in s["final_test_error"]) if first else "",
                        f"{s['median_pretrain_seconds']:.1f}" if first else "")
    c.print(tab)


TTA_RUNS = "nmf_best:float32,nmf_best:float64,bp:float32,torch:float32:mse,torch:float32:xent"


def tta_specs(runs: str, overrides) -> list[dict]:
    """``--runs`` items ``NAME:DTYPE[:LOSS]`` as composed configs: NAME is ``nmf``, ``bp``, ``torch`` (the
    ``solver=bp`` config -- Adam settings, batch, loss -- run in PyTorch) or an experiment preset
    (``nmf_best``: ``experiment=nmf_best``); LOSS (bp, torch) sets ``solver.loss``."""
    from ..config import compose_config, conf_dir
    from ..errors import NmfdnnError

    presets = sorted(p.stem for p in (Path(conf_dir()) / "experiment").glob("*.yaml"))
    specs = []
    for item in runs.split(","):
        parts = item.split(":")
        name = parts[0]
        if len(parts) not in (2, 3) or name not in ("nmf", "bp", "torch", *presets):
            raise NmfdnnError(f"bench --tta: --runs takes items NAME:DTYPE[:LOSS], NAME nmf, bp, torch or a preset "
                              f"({', '.join(presets)}), e.g. {TTA_RUNS}; got {item!r}")
        if len(parts) == 3 and name == "nmf":
            raise NmfdnnError(f"bench --tta: LOSS is for bp and torch runs only; got {item!r}")
        first = [f"experiment={name}"] if name in presets else [f"solver={'bp' if name == 'torch' else name}"]
        extra = [f"solver.loss={parts[2]}"] if len(parts) == 3 else []
        cfg = compose_config([*first, "epochs=10", "progress=false", f"dtype={parts[1]}", *extra, *overrides])
        specs.append({"label": " ".join(parts), "cfg": cfg, "framework": "torch" if name == "torch" else "nmfdnn"})
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


def build_parser():
    from . import Parser

    ap = Parser(prog="nmfdnn bench", description="This machine's GEMM rate, then a short run of the train "
                "config (epochs=1 unless overridden): seconds, GFLOP/s and share of GEMM per phase; writes "
                "DIR/bench.json. With --tta: time to accuracy of several solvers; with --table: a markdown "
                "table of bench.json files; with --shapes: the rate of the method's own products.")
    ap.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="train config overrides, KEY=VALUE")
    ap.add_argument("--out", metavar="DIR", help="output folder (default outputs/bench/DATE_TIME or outputs/tta/...)")
    ap.add_argument("--gemm-size", type=int, default=4000, metavar="N",
                    help="the GEMM rate is that of N x N products, measured before and after the run (default 4000)")
    ap.add_argument("--table", nargs="+", metavar="DIR", help="print a markdown table of the bench.json under DIR")
    ap.add_argument("--shapes", action="store_true", help="GFLOP/s of the [1000,500] MNIST fine-tuning's own "
                    "products next to a square GEMM (the ceiling of the share of GEMM)")
    ap.add_argument("--tta", action="store_true", help="time to accuracy: training seconds until the test error "
                    "first drops below --target, for each of --runs, at most epochs=10 each; writes DIR/tta.json")
    ap.add_argument("--target", type=_percentages, default=[2.0, 1.6], metavar="PCT[,PCT...]",
                    help="--tta target test errors %% (default 2.0,1.6)")
    ap.add_argument("--runs", default=TTA_RUNS, metavar="NAME:DTYPE[:LOSS],...",
                    help=f"--tta runs; torch = the bp config in PyTorch, if installed (default {TTA_RUNS})")
    ap.add_argument("--repeats", type=int, default=1, metavar="N", help="--tta interleaved rounds; medians reported")
    return ap


def main(argv: list[str]) -> int:
    import logging

    from ..config import compose_config
    from ..errors import NmfdnnError

    a = build_parser().parse_intermixed_args(argv)
    if a.table:
        print(scaling_table(a.table))
        return 0
    if a.shapes:
        for dtype in ("float64", "float32"):
            print_shape_rates(shape_rates([1000, 500], 784, 5000, dtype))
        return 0
    if a.gemm_size < 1 or a.repeats < 1:
        raise NmfdnnError(f"bench: --gemm-size and --repeats take positive integers, got {a.gemm_size} and {a.repeats}")
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(a.out) if a.out else Path("outputs") / ("tta" if a.tta else "bench") / stamp
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.tta:
        specs = tta_specs(a.runs, a.overrides)
        out.mkdir(parents=True, exist_ok=True)
        print_tta(run_tta(specs, a.target, out, a.gemm_size, a.repeats))
        print(f"written to {out / 'tta.json'}")
        return 0
    cfg = compose_config(["epochs=1", "progress=false", *a.overrides])
    out.mkdir(parents=True, exist_ok=True)
    print_bench(bench(cfg, out, gemm_n=a.gemm_size))
    print(f"written to {out / 'bench.json'}")
    return 0
