"""Where a fine-tuning batch's time goes, operation by operation (``nmfdnn bench --ops``, ``make speed-ops``).

``nmfdnn bench`` gives the seconds and the share of the GEMM rate of each *phase* (semi-NMF, the
pseudo-inverses, Algorithms 2 and 3); this tool splits one Algorithm 4 batch of the shipped defaults
(``pinv=chol``, ``input_pinv=chol``, one inner iteration, two hidden layers) into the operations inside
those phases and times each alone, with the method's own functions on one real mini-batch, under the
same BLAS thread settings as a run (:func:`nmfdnn.backend.blas_threads`): the products, the Cholesky
factorisations and triangular solves (SciPy's LAPACK, one thread), and the element-wise kernels (NumPy,
one thread). The counted FLOPs are those of :mod:`nmfdnn.tools.flops`; element-wise work counts none.
Weights are random (dense products do not depend on the values); the input is the data set's, so that
the input SVD has its real rank.
"""

from __future__ import annotations

import statistics
import time

import numpy as np


def _median_seconds(f, repeats: int, setup=None) -> float:
    """Median seconds of ``f(*setup())`` over ``repeats`` calls after a warm-up; ``setup`` (fresh copies of
    the arrays an in-place operation overwrites) runs outside the clock."""
    setup = setup or tuple
    f(*setup())  # warm-up: first-touch page faults, thread start-up
    ts = []
    for _ in range(repeats):
        args = setup()
        t0 = time.perf_counter()
        f(*args)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def op_profile(X, hidden, batch: int, dtype: str, threshold: float = 4e-2, repeats: int = 7,
               gemm_n: int = 4000, n_classes: int = 10) -> dict:
    """Median seconds and counted GFLOP of each operation of one fine-tuning batch of a two-hidden-layer
    network ``hidden = [q1, q2]`` on the columns of ``X`` (features x samples), shipped defaults."""
    from ..backend import get_backend
    from ..method import kernels
    from ..method import linalg as la
    from ..method import semi_nmf as sn
    from ..backend import blas_threads
    from .machine import gemm_rate

    if len(hidden) != 2:
        raise ValueError("bench --ops profiles a network of two hidden layers, e.g. hidden=[1000,500]")
    q1, q2 = hidden
    c = n_classes
    bk = get_backend("numpy", dtype, "float64")
    rng = np.random.default_rng(0)
    with blas_threads(None):
        X = bk.asarray(X)
        n0, m_all = X.shape
        svd = la.input_svd(bk, X, threshold)
        J = rng.permutation(m_all)[:batch]
        m = len(J)
        XJ = X[:, J]
        W1, W2, W3 = (bk.asarray(rng.standard_normal(s) * 0.05) for s in ((q1, n0), (q2, q1), (c, q2)))
        Y = bk.xp.zeros((c, m), dtype=bk.dtype)
        Y[rng.integers(0, c, m), np.arange(m)] = 1
        Z1 = bk.relu(W1 @ XJ)
        Z2 = bk.relu(W2 @ Z1)
        B1, B2 = Z1 + 0.01, Z2 + 0.01  # targets near the forward pass, as after semi-NMF
        R1, R2 = B1 - Z1, B2 - Z2
        P2 = la.right_pinv(bk, Z1, 1e-14, "chol")
        T2 = R2 @ Z1.T
        W2p = la.left_pinv(bk, W2, 1e-14, "chol")
        Xp = la.batch_input_pinv(bk, svd, J, "chol")
        r = Xp.rank
        WtW = W3.T @ W3
        parts = (bk.xp.abs(WtW) @ Z2, W3.T @ (W3 @ Z2), W3.T @ Y)
        G1 = Z1 @ Z1.T
        ops = [
            ("gather", "X(:, J)", lambda: X[:, J], 0),
            ("forward", "W_1 X_J, W_2 Z_1, W_3 Z_2 and ReLUs",
             lambda: (bk.relu(W1 @ XJ), bk.relu(W2 @ Z1), W3 @ Z2), 2 * m * (q1 * n0 + q2 * q1 + c * q2)),
            ("semi_nmf", f"W_3 = Y Z_2^+: Gram {q2}x{m}, Cholesky, solve",
             lambda: sn.update_w(bk, Y, Z2, 1e-14, "chol"),
             q2 * q2 * m + q2 ** 3 / 3 + 2 * c * q2 * m + 2 * q2 * q2 * c),
            ("semi_nmf", f"abs(W^T W) Z_2 ({q2}x{q2} by {q2}x{m})",
             lambda: bk.xp.abs(WtW) @ Z2, 2 * q2 * q2 * m),
            ("semi_nmf", f"W^T (W Z_2), W^T Y (W is {c}x{q2})",
             lambda: (W3.T @ (W3 @ Z2), W3.T @ Y), 4 * c * q2 * m + 2 * c * q2 * m),
            ("semi_nmf", f"multiplicative update, element-wise ({q2}x{m})",
             lambda a, lo, wy: kernels.semi_nmf_ratio_(bk, Z2, a, lo, wy), 0, lambda: [p.copy() for p in parts]),
            ("pinv", f"Gram Z_1 Z_1^T ({q1}x{m})", lambda: Z1 @ Z1.T, q1 * q1 * m),
            ("pinv", f"Cholesky of the {q1}x{q1} Gram matrix",
             lambda G: la.gram_cholesky(bk, G, 1e-14), q1 ** 3 / 3, lambda: (G1.copy(),)),
            ("pinv", f"W_2^+ ({q2}x{q1}): Gram, Cholesky, solve",
             lambda: la.left_pinv(bk, W2, 1e-14, "chol"), q2 * q2 * q1 + q2 ** 3 / 3 + 2 * q2 * q2 * q1),
            ("alg2", f"layer 2: R Z_1^T ({q2}x{m} by {m}x{q1})", lambda: R2 @ Z1.T, 2 * q2 * q1 * m),
            ("alg2", f"layer 2: triangular solves ({q1}x{q1}, {q2} right-hand sides)",
             lambda T: bk.cho_solve(P2.factor, bk.to_factor(T.T)), 2 * q1 * q1 * q2, lambda: (T2.copy(),)),
            ("alg2", f"layer 1: R_1 X_J^+ (rank {r})", lambda: Xp.apply(R1), 2 * q1 * m * r + 2 * q1 * r * n0),
            ("alg2", f"residuals B - f(U) ({q1}x{m}, {q2}x{m})",
             lambda: (bk.xp.subtract(B1, Z1, out=R1), bk.xp.subtract(B2, Z2, out=R2)), 0),
            ("batch_pinv", f"X_J^+: Gram of V_1(J,:) ({m}x{r}), Cholesky, solve",
             lambda: la.batch_input_pinv(bk, svd, J, "chol"), r * r * m + r ** 3 / 3 + 2 * r * r * m),
            ("alg3", f"W_2 Z_1 and its residual ({q2}x{q1} by {q1}x{m})",
             lambda: kernels.residual_relu_(bk, B2, W2 @ Z1), 2 * q2 * q1 * m),
            ("alg3", f"W_2^+ R ({q1}x{q2} by {q2}x{m})", lambda: W2p @ R2, 2 * q1 * q2 * m),
            ("alg3", f"f(Z + step), element-wise ({q1}x{m})",
             lambda S: kernels.add_relu_(bk, Z1, S), 0, lambda: (R1.copy(),)),
        ]
        rows = [{"phase": ph, "operation": name, "seconds": _median_seconds(f, repeats, *setup), "gflop": fl / 1e9}
                for ph, name, f, fl, *setup in ops]
        rate = gemm_rate(dtype, n=gemm_n, bk=bk)
    for row in rows:
        row["ratio_to_gemm"] = row["gflop"] / row["seconds"] / rate if row["gflop"] else None
    total = sum(r["seconds"] for r in rows)
    gflop = sum(r["gflop"] for r in rows)
    return {"dtype": dtype, "hidden": list(hidden), "batch": m, "input_rank": r, "gemm_gflops": rate,
            "repeats": repeats, "ops": rows, "seconds": total, "gflop": gflop, "ratio_to_gemm": gflop / total / rate}


def ops_markdown(profiles: list[dict]) -> str:
    """The profiles of :func:`op_profile` side by side (one column pair per dtype)."""
    head = ["phase", "operation", *(f"{p['dtype']} ms (of GEMM)" for p in profiles)]
    p0 = profiles[0]
    out = [f"One fine-tuning batch of the shipped defaults, hidden {p0['hidden']}, batch {p0['batch']}, input rank "
           f"{p0['input_rank']}: each operation alone, median of {p0['repeats']}; GEMM GFLOP/s "
           + ", ".join(f"{p['dtype']} {p['gemm_gflops']:.1f}" for p in profiles) + ".", "",
           "| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(profiles)]

    def cell(r):
        share = f" ({r['ratio_to_gemm']:.0%})" if r["ratio_to_gemm"] else " (—)"
        return f"{1e3 * r['seconds']:.1f}{share}"

    for k, r in enumerate(p0["ops"]):
        out.append(f"| {r['phase']} | {r['operation']} | " + " | ".join(cell(p["ops"][k]) for p in profiles) + " |")
    out.append("| all | the sum | " + " | ".join(f"{1e3 * p['seconds']:.1f} ({p['ratio_to_gemm']:.0%})"
                                                 for p in profiles) + " |")
    return "\n".join(out) + "\n"
