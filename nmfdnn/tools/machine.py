"""Machine facts for the speed tools: the GEMM rate (the ceiling every phase is measured against), the
rate of the method's own product shapes, peak memory and the BLAS libraries in use."""

from __future__ import annotations

import resource
import time

import numpy as np


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

    c = console()
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


def console():
    """A rich console: the terminal's width, or 160 columns when the output is not a terminal."""
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=160)
