"""``nmfdnn bench [OVERRIDES]``: this machine's GEMM rate, then a short training run, per phase:
seconds, floating-point operations, GFLOP/s and the ratio to the measured GEMM rate.

FLOPs are counted analytically from the shapes (:func:`nmf_phase_flops`): ``2 m n k`` for every
matrix product of the phase, ``n^2 m`` for a Gram product ``A A^T`` (NumPy computes those with a
symmetric rank-k update), ``2 b r^2`` for a QR of ``b x r`` and ``b r^2`` for the triangular solve.
Eigendecompositions and element-wise work are *not* counted (their time is), so each rate is a lower
bound of the arithmetic the phase really does.
"""

from __future__ import annotations

import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from .outputs import atomic_write_json


def gemm_rate(dtype: str, n: int = 3000, repeats: int = 3, bk=None) -> float:
    """Best-of-``repeats`` GFLOP/s of an ``n x n`` by ``n x n`` product in ``dtype`` on the backend."""
    from .backend import get_backend

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


def nmf_phase_flops(n: list[int], m: int, batch: int, rank: int, sol, ae_samples: int) -> dict[str, float]:
    """FLOPs per phase of one epoch of Algorithm 4 over ``m`` samples (``n = [n_0, ..., n_d]``), and of
    Algorithm 5 on ``ae_samples`` samples (``ae_*`` phases, counted once)."""
    d = len(n) - 1
    n_batches = max(1, -(-m // batch))
    b = m / n_batches  # mean batch size
    L, S = sol.lsq_iters, sol.semi_nmf_iters
    f = dict.fromkeys(["forward", "semi_nmf", "pinv", "alg2", "alg3", "batch_pinv"], 0.0)
    f["forward"] = sum(2 * n[i] * n[i - 1] * b for i in range(1, d))
    p, q = n[d - 1], n[d]
    f["semi_nmf"] = S * (p * p * b + 2 * q * p * b + 4 * q * p * p + 2 * p * q * b + 2 * p * p * q + 4 * p * p * b)
    for i in range(d - 1, 1, -1):
        ni, nj = n[i], n[i - 1]
        f["pinv"] += nj * nj * b + min(ni, nj) ** 2 * max(ni, nj) + 4 * nj * ni * min(ni, nj)
        f["alg2"] += L * (4 * ni * nj * b + 4 * ni * nj * nj)
        f["alg3"] += L * (4 * ni * nj * b)
    f["alg2"] += L * (2 * n[1] * n[0] * b + 2 * n[1] * b * rank + 2 * n[1] * rank * n[0])
    f["batch_pinv"] = 3 * b * rank * rank
    out = {k: v * n_batches for k, v in f.items()}
    # Algorithm 5: per layer and outer iteration, ae_nmf_iters NMF updates and ae_lsq_iters of Alg. 2.
    a = ae_samples
    nmf = alg2 = 0.0
    for i in range(1, d):
        ni, nj = n[i], n[i - 1]
        per_nmf = 2 * nj * ni * ni + 2 * ni * ni * a + 2 * ni * nj * a + ni * ni * a + 2 * nj * ni * ni + 2 * nj * a * ni
        nmf += sol.ae_iters * sol.ae_nmf_iters * per_nmf
        if i == 1:
            per_lsq = 2 * ni * nj * a + 2 * ni * a * rank + 2 * ni * rank * nj
        else:
            per_lsq = 4 * ni * nj * a + 4 * ni * nj * nj
        alg2 += sol.ae_iters * sol.ae_lsq_iters * per_lsq
    out["ae_nmf"], out["ae_alg2"] = nmf, alg2
    return out


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


def bench(cfg, out_dir, reporter=None) -> dict:
    """Measure the GEMM rate, train ``cfg`` (normally a short run) and write ``bench.json``."""
    from .backend import get_backend
    from .data import load_dataset
    from .config import dtype_name
    from .train import blas_threads, fit

    dtype = dtype_name(cfg)
    data = load_dataset(cfg.dataset)
    with blas_threads(cfg.backend.get("threads")):
        bk = get_backend(cfg.backend.name, dtype)
        rate = gemm_rate(dtype, bk=bk)
        result = fit(cfg, data, reporter)
    phases = dict(result.phases)
    rows = {}
    if cfg.solver.name == "nmf":
        rank = int(result.info.get("input_rank", 0))
        bias = int(bool(cfg.solver.bias))
        n = [data.n_in + bias] + [h + bias for h in cfg.hidden] + [data.n_classes]
        flops = nmf_phase_flops(n, data.train.m, cfg.solver.batch_size, rank, cfg.solver, cfg.solver.ae_samples)
        for k, v in flops.items():
            flops[k] = v * (cfg.epochs if not k.startswith("ae_") else 1)
        for k, sec in phases.items():
            fl = flops.get(k)
            rows[k] = {"seconds": sec, "gflop": fl / 1e9 if fl else None,
                       "gflops": fl / sec / 1e9 if fl and sec > 0 else None,
                       "ratio_to_gemm": fl / sec / 1e9 / rate if fl and sec > 0 else None}
        ft = sum(v for k, v in flops.items() if not k.startswith("ae_"))
        epoch_rate = ft / result.finetune_seconds / 1e9 if result.finetune_seconds > 0 else None
    else:
        rows = {k: {"seconds": v} for k, v in phases.items()}
        ft, epoch_rate = None, None
    out = {
        "gemm_gflops": rate, "dtype": dtype, "backend": cfg.backend.name, "hidden": list(cfg.hidden),
        "solver": cfg.solver.name, "epochs": cfg.epochs, "n_train": data.train.m,
        "batch_size": cfg.solver.batch_size,
        "pretrain_seconds": result.pretrain_seconds, "finetune_seconds": result.finetune_seconds,
        "epoch_seconds": result.finetune_seconds / max(cfg.epochs, 1),
        "finetune_gflop": ft / 1e9 if ft else None, "finetune_gflops": epoch_rate,
        "finetune_ratio_to_gemm": epoch_rate / rate if epoch_rate else None,
        "test_error": result.history[-1]["test_error"], "peak_rss_gib": peak_rss_gib(),
        "blas": blas_info(), "cpu_count": os.cpu_count(), "phases": rows,
    }
    atomic_write_json(Path(out_dir) / "bench.json", out)
    return out


def print_bench(b: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    c = Console() if Console().is_terminal else Console(width=160)
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
