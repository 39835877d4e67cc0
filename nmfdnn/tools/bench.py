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
import time
from pathlib import Path


from ..fileio import atomic_write_json
from .machine import blas_info, console, gemm_rate, peak_rss_gib, print_shape_rates, shape_rates
from .tta import TTA_RUNS, _percentages, print_tta, rewrite_tta_tables, run_tta, tta_specs


FINETUNE_PHASES = ("forward", "semi_nmf", "pinv", "alg2", "alg3", "batch_pinv", "gather", "backprop", "adam")


def counted_fit(cfg, data, reporter=None):
    """Train ``cfg`` on the FLOP-counting NumPy backend (:mod:`nmfdnn.tools.flops`): the same run,
    with the operations of every phase counted. Returns ``(result, flops per phase)``."""
    from ..backend import backend_for
    from ..train import fit
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
    from ..config import validate
    from ..data import load_dataset
    from ..backend import blas_threads
    from ..train import fit
    from .report import net_name

    dtype = dtype_name(cfg)
    data = load_dataset(cfg.dataset)
    validate(cfg, n_train=data.train.m)  # the data-size checks of nmfdnn train
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
        "backend": cfg.backend.name, "hidden": list(cfg.hidden), "net": net_name(OmegaConf.to_container(cfg)),
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


def print_bench(b: dict) -> None:
    from rich.table import Table

    c = console()
    t = Table(title=f"nmfdnn bench: {b['solver']} {b.get('net', b['hidden'])} {b['dtype']} on {b['backend']} "
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
        out.append(f"| {b.get('net') or '-'.join(map(str, b['hidden']))} | {b.get('batch_size', '—')} | {b['dtype']} | "
                   f"{b['epoch_seconds']:.2f} | {b['pretrain_seconds']:.1f} | {rate} | {share} | {b['peak_rss_gib']:.2f} |")
    return "\n".join(out)


def _ops(a, out: Path) -> int:
    """``nmfdnn bench --ops``: :func:`nmfdnn.tools.ops.op_profile` of the train config's data, network and
    batch in both dtypes."""
    from ..config import compose_config, validate
    from ..data import load_dataset
    from ..errors import NmfdnnError
    from ..fileio import atomic_write_bytes
    from .ops import op_profile, ops_markdown

    cfg = compose_config(["progress=false", *a.overrides])
    if cfg.solver.name != "nmf" or len(cfg.hidden) != 2:
        raise NmfdnnError("bench --ops profiles solver=nmf with two hidden layers, e.g. hidden=[1000,500]")
    data = load_dataset(cfg.dataset)
    validate(cfg, n_train=data.train.m)
    profiles = [op_profile(data.train.X, list(cfg.hidden), int(cfg.solver.batch_size), dt,
                           float(cfg.solver.input_threshold), gemm_n=a.gemm_size, n_classes=data.n_classes)
                for dt in ("float64", "float32")]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ops.json", {"profiles": profiles, "cpu_count": os.cpu_count()})
    md = ops_markdown(profiles)
    atomic_write_bytes(out / "ops.md", md.encode())
    print(md, end="")
    print(f"written to {out / 'ops.json'}")
    return 0


def build_parser():
    from . import Parser

    ap = Parser(prog="nmfdnn bench", description="This machine's GEMM rate, then a short run of the train "
                "config (epochs=1 unless overridden): seconds, GFLOP/s and share of GEMM per phase; writes "
                "DIR/bench.json. With --tta: time to accuracy of several solvers; with --table: a markdown "
                "table of bench.json files (with --tta: DIR/tta.md and summary.md again from DIR/tta.json); "
                "with --shapes: the rate of the method's own products; with --ops: one batch by operation.")
    ap.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="train config overrides, KEY=VALUE")
    ap.add_argument("--out", metavar="DIR", help="output folder (default outputs/bench/DATE_TIME or outputs/tta/...)")
    ap.add_argument("--gemm-size", type=int, default=4000, metavar="N",
                    help="the GEMM rate is that of N x N products, measured before and after the run (default 4000)")
    ap.add_argument("--table", nargs="+", metavar="DIR", help="print a markdown table of the bench.json under DIR")
    ap.add_argument("--shapes", action="store_true", help="GFLOP/s of the [1000,500] MNIST fine-tuning's own "
                    "products next to a square GEMM (the ceiling of the share of GEMM)")
    ap.add_argument("--ops", action="store_true", help="one fine-tuning batch of the defaults, operation by "
                    "operation (two hidden layers), float64 and float32; writes DIR/ops.json and DIR/ops.md")
    ap.add_argument("--tta", action="store_true", help="time to accuracy: training seconds until the test error "
                    "first drops below --target, for each of --runs, at most epochs=10 each; writes DIR/tta.json")
    ap.add_argument("--target", type=_percentages, default=[2.0, 1.6], metavar="PCT[,PCT...]",
                    help="--tta target test errors %% (default 2.0,1.6)")
    ap.add_argument("--runs", default=TTA_RUNS, metavar="NAME:DTYPE[:LOSS] [KEY=VALUE ...],...",
                    help=f"--tta runs, each with its own overrides after a space; torch = the bp config in "
                    f"PyTorch, if installed (default {TTA_RUNS})")
    ap.add_argument("--repeats", type=int, default=1, metavar="N", help="--tta interleaved rounds; medians reported")
    return ap


def main(argv: list[str]) -> int:
    import logging

    from ..config import compose_config
    from ..errors import NmfdnnError

    a = build_parser().parse_intermixed_args(argv)
    if a.table and a.tta:  # the tables of finished time-to-accuracy runs, rewritten from their tta.json
        for d in a.table:
            print(rewrite_tta_tables(d), end="")
        return 0
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
    if a.ops:
        return _ops(a, out)
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
