"""The MPI study (``make mpi``, outputs/mpi): one run over P processes against one process.

``python -m nmfdnn.maint.mpi compare ONE TWO``
    the weights (``model.npz``) and error rates of two finished runs of the same config, e.g. one
    process against ``mpiexec -n 2``: relative difference per layer, ``||W - W'||_F / ||W||_F``.
``python -m nmfdnn.maint.mpi scaling BASE RUN...``
    fine-tuning seconds per batch, per phase, of runs that differ only in ranks and threads, with the
    seconds spent in all-reduces, and the parallel efficiency ``T_base / (P T_run)`` against ``BASE``.
``python -m nmfdnn.maint.mpi count``
    the FLOPs of one fine-tuning batch of each Table 1 network (counted through the backend seam,
    :mod:`nmfdnn.tools.flops`) split into the part that shrinks with the columns a rank holds
    (``F_par``: every product over the batch's columns) and the part every rank repeats (``F_rep``:
    the factorisations and weight updates), from two batch sizes; with the all-reduces' bytes and calls.
``python -m nmfdnn.maint.mpi model COUNTS SCALING``
    the model of the parallel efficiency for P up to 64 (see :func:`model`).

Each writes ``NAME.json`` and ``NAME.md`` into ``--out`` (default: the current directory).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes, atomic_write_json
from ..tools import Parser

FINETUNE = ("forward", "semi_nmf", "pinv", "alg2", "alg3", "batch_pinv", "gather")
NETWORKS = ([500], [1000, 500], [1500, 1000, 500], [2000, 1500, 1000, 500])
# Links of the model: bandwidth in bytes/s and latency in s per message (one hop).
LINKS = {"InfiniBand 100 Gb/s": (12.5e9, 1.5e-6), "Ethernet 10 Gb/s": (1.25e9, 30e-6)}
RANKS = (1, 2, 4, 8, 16, 32, 64)


def _run(run_dir):
    """The metrics of the finished run in ``run_dir``, with its config under ``config`` (threads filled
    in: null means all the machine's cores)."""
    from omegaconf import OmegaConf

    d = Path(run_dir)
    try:
        m = json.loads((d / "metrics.json").read_text())
        m["config"] = OmegaConf.to_container(OmegaConf.load(d / "config.yaml"))
    except (OSError, ValueError) as e:
        raise SystemExit(f"nmfdnn mpi: error: {d}: no finished run ({e})") from None
    if m.get("status") != "finished":
        raise SystemExit(f"nmfdnn mpi: error: {d} holds no finished run")
    b = m["config"]["backend"]
    b["threads"] = b.get("threads") or m["machine"]["cpu_count"]
    return m


def _weights(run_dir):
    with np.load(Path(run_dir) / "model.npz") as z:
        return {k: z[k] for k in sorted(z.files) if k.startswith("W")}


def compare(one, two) -> dict:
    """Relative weight differences per layer and the error rates of runs ``one`` and ``two``."""
    m1, m2 = _run(one), _run(two)
    w1, w2 = _weights(one), _weights(two)
    if w1.keys() != w2.keys() or any(w1[k].shape != w2[k].shape for k in w1):
        raise SystemExit("nmfdnn mpi: error: the two runs have different networks")
    diff = {k: float(np.linalg.norm(w1[k] - w2[k]) / np.linalg.norm(w1[k])) for k in w1}
    side = {}
    for name, m in (("one", m1), ("two", m2)):
        side[name] = {"ranks": m["info"].get("ranks", 1), "test_error": m["test_error"],
                      "train_error": m["train_error"], "pretrain_seconds": m["pretrain_seconds"],
                      "finetune_seconds": m["finetune_seconds"], "threads": m["config"]["backend"]["threads"]}
    return {"relative_difference": diff, "max_relative_difference": max(diff.values()), "runs": side,
            "hidden": m1["hidden"], "epochs": m1["config"]["epochs"]}


def compare_md(c: dict) -> str:
    a, b = c["runs"]["one"], c["runs"]["two"]
    lines = [f"| | {a['ranks']} process(es) | {b['ranks']} process(es) |", "|---|---:|---:|",
             f"| test error % | {a['test_error']:.2f} | {b['test_error']:.2f} |",
             f"| train error % | {a['train_error']:.2f} | {b['train_error']:.2f} |",
             f"| pre-training s | {a['pretrain_seconds']:.0f} | {b['pretrain_seconds']:.0f} |",
             f"| fine-tuning s | {a['finetune_seconds']:.0f} | {b['finetune_seconds']:.0f} |", "",
             "Relative difference of the weights, ||W - W'||_F / ||W||_F: " +
             ", ".join(f"{k} {v:.1e}" for k, v in c["relative_difference"].items()) +
             f" (largest {c['max_relative_difference']:.1e})."]
    return "\n".join(lines) + "\n"


def scaling(base, runs) -> dict:
    """Per-batch fine-tuning seconds per phase of ``base`` and ``runs``; efficiency against ``base``."""
    rows = []
    for d in [base, *runs]:
        m = _run(d)
        n_batches = max(1, -(-m["n_train"] // m["config"]["solver"]["batch_size"])) * m["config"]["epochs"]
        info = m["info"]
        rows.append({
            "run": Path(d).name, "ranks": info.get("ranks", 1), "threads": m["config"]["backend"]["threads"],
            "hidden": m["hidden"], "batches": n_batches,
            "batch_seconds": m["finetune_seconds"] / n_batches,
            "phases": {k: m["phase_seconds"][k] / n_batches for k in FINETUNE if k in m["phase_seconds"]},
            "comm_seconds": info.get("finetune_comm_seconds", 0.0) / n_batches,
            "allreduce_bytes": info.get("allreduce_bytes_per_batch"),
            "allreduce_calls": info.get("allreduce_calls_per_batch"),
            "pretrain_seconds": m["pretrain_seconds"],
            "autoencoder": {k: v for k, v in m["phase_seconds"].items() if k.startswith("ae_") or k == "input_svd"}})
    t0 = rows[0]["batch_seconds"]
    for r in rows:
        r["speedup"] = t0 / r["batch_seconds"]
        r["efficiency"] = r["speedup"] / (r["ranks"] * r["threads"] / (rows[0]["ranks"] * rows[0]["threads"]))
    return {"rows": rows}


def scaling_md(s: dict) -> str:
    rows = s["rows"]
    phases = [k for k in FINETUNE if any(k in r["phases"] for r in rows)]
    head = ["run", "ranks x threads", "s / batch", *phases, "all-reduce s", "MB / batch", "speed-up",
            "efficiency", "pre-training s (NMF, Alg. 2)"]
    lines = ["Fine-tuning seconds per batch, per phase; pre-training seconds of the same run.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        cells = [r["run"], f"{r['ranks']} x {r['threads']}", f"{r['batch_seconds']:.2f}",
                 *(f"{r['phases'].get(k, 0.0):.2f}" for k in phases), f"{r['comm_seconds']:.2f}",
                 f"{(r['allreduce_bytes'] or 0) / 1e6:.1f}", f"{r['speedup']:.2f}", f"{r['efficiency']:.2f}",
                 f"{r['pretrain_seconds']:.0f} ({r['autoencoder'].get('ae_nmf', 0):.0f}, "
                 f"{r['autoencoder'].get('ae_alg2', 0):.0f})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def count(batch: int = 5000, networks=NETWORKS, dataset: str = "mnist") -> dict:
    """``F_par`` and ``F_rep`` of one fine-tuning batch of each network (see the module docstring):
    counted fine-tuning FLOPs of one batch of ``batch`` and of ``2 batch`` columns (``F = F_par b / batch
    + F_rep``), with the all-reduce bytes and calls of a batch (independent of its width). The
    pre-training of these counting runs is cut to one iteration (``solver.ae_iters=1``): it sets the
    weights, not the shapes of a batch's products."""
    from ..config import compose_config
    from ..data import load_dataset
    from ..tools.bench import counted_fit

    out = {}
    for hidden in networks:
        per = {}
        for b in (batch, 2 * batch):
            cfg = compose_config([f"dataset={dataset}", f"dataset.train_subset={b}", f"hidden={list(hidden)}",
                                  f"solver.batch_size={b}", "solver.ae_iters=1", "epochs=1", "progress=false",
                                  "eval_train=false"])
            result, flops = counted_fit(cfg, load_dataset(cfg.dataset))
            per[b] = (sum(v for k, v in flops.items() if k in FINETUNE), result.info)
        (f1, info), (f2, _) = per[batch], per[2 * batch]
        out[str(list(hidden))] = {"hidden": list(hidden), "batch": batch, "F_par": f2 - f1, "F_rep": 2 * f1 - f2,
                                  "allreduce_bytes": info["allreduce_bytes_per_batch"],
                                  "allreduce_calls": info["allreduce_calls_per_batch"]}
    return out


def allreduce_seconds(nbytes: float, calls: float, P: int, bandwidth: float, latency: float) -> float:
    """A ring all-reduce of ``nbytes`` in ``calls`` messages over P ranks: each rank sends and receives
    ``2 (P - 1) / P`` of the data, in ``2 ceil(log2 P)`` latency-bound steps per call (the usual
    bandwidth- and latency-optimal algorithms; Thakur, Rabenseifner and Gropp 2005)."""
    if P == 1:
        return 0.0
    return 2 * (P - 1) / P * nbytes / bandwidth + calls * 2 * math.ceil(math.log2(P)) * latency


def model(counts: dict, rate: float, ranks=RANKS, links=LINKS) -> dict:
    """Parallel efficiency of one fine-tuning batch on P ranks of one core each, for every network:

    ``T(P, B) = (F_par B / b / P + F_rep) / rate + allreduce(bytes, calls, P)``, with ``rate`` the
    FLOP rate of one core measured here. Strong scaling keeps the paper's batch ``b``:
    ``E = T(1, b) / (P T(P, b))``. Grown batches (``B = P b``, each rank keeping ``b`` columns):
    ``E = T(1, P b) / (P T(P, P b))``, the time per sample against one process doing the same batch."""
    out = {"rate_gflops": rate / 1e9, "links": {k: {"bandwidth_GBps": v[0] / 1e9, "latency_us": v[1] * 1e6}
                                               for k, v in links.items()}, "networks": {}}
    for key, c in counts.items():
        fp, fr, b = c["F_par"], c["F_rep"], c["batch"]
        net = {}
        for link, (bw, lat) in links.items():
            for grown in (False, True):
                row = {}
                for P in ranks:
                    B = b * P if grown else b
                    t1 = (fp * B / b + fr) / rate
                    tP = (fp * B / b / P + fr) / rate + allreduce_seconds(c["allreduce_bytes"], c["allreduce_calls"],
                                                                          P, bw, lat)
                    row[P] = t1 / (P * tP)
                net[f"{link}, {'batch P x ' + str(b) if grown else 'batch ' + str(b)}"] = row
        out["networks"][key] = {"F_par_gflop": fp / 1e9, "F_rep_gflop": fr / 1e9,
                                "allreduce_MB": c["allreduce_bytes"] / 1e6, "calls": c["allreduce_calls"],
                                "efficiency": net}
    return out


def model_md(m: dict) -> str:
    lines = [f"Compute rate of one core (measured here): {m['rate_gflops']:.1f} GFLOP/s. Links: " +
             "; ".join(f"{k}: {v['bandwidth_GBps']:.2f} GB/s, {v['latency_us']:.1f} us" for k, v in m["links"].items()),
             "", "| network | F_par GFLOP | F_rep GFLOP | all-reduce MB (calls) / batch | setting | " +
             " | ".join(f"P={P}" for P in RANKS) + " |", "|---|---:|---:|---:|---|" + "---:|" * len(RANKS)]
    for key, n in m["networks"].items():
        first = True
        for setting, row in n["efficiency"].items():
            lead = (f"| {key} | {n['F_par_gflop']:.1f} | {n['F_rep_gflop']:.1f} | {n['allreduce_MB']:.0f} "
                    f"({n['calls']}) |" if first else "| | | | |")
            lines.append(lead + f" {setting} | " + " | ".join(f"{row[str(P)]:.2f}" for P in RANKS) + " |")
            first = False
    return "\n".join(lines) + "\n"


def summary_md(m: dict, scaling: dict) -> str:
    """The README's table: measured here (2 ranks against 1 on the deepest network), then the model's
    efficiency per network and P, ``InfiniBand / Ethernet``, at the paper's batch and with it grown."""
    base, two = scaling["rows"][0], next(r for r in scaling["rows"] if r["ranks"] == 2)
    links = list(m["links"])
    ranks = [P for P in RANKS if P > 1]
    lines = [f"Measured here ({base['hidden']}, one fine-tuning epoch each): {base['batch_seconds']:.2f} s per batch "
             f"with 1 process, {two['batch_seconds']:.2f} s with 2 ({two['comm_seconds']:.2f} s of it in all-reduces "
             f"of {two['allreduce_bytes'] / 1e6:.0f} MB): efficiency {two['efficiency']:.2f}. "
             f"Modelled efficiency, {links[0]} / {links[1]}:", "",
             "| network | batch | " + " | ".join(f"P={P}" for P in ranks) + " |", "|---|---|" + "---:|" * len(ranks)]
    for key, n in m["networks"].items():
        for grown in (False, True):
            cells = []
            for P in ranks:
                e = [n["efficiency"][next(k for k in n["efficiency"] if k.startswith(link) and
                                          (("P x" in k) == grown))][str(P)] for link in links]
                cells.append(f"{e[0]:.2f} / {e[1]:.2f}")
            lines.append(f"| {key} | {'P x 5000' if grown else '5000'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write(out: Path, name: str, data: dict, md: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{name}.json", data)
    atomic_write_bytes(out / f"{name}.md", md.encode())
    print(md, end="")


def main(argv=None) -> int:
    ap = Parser(prog="python -m nmfdnn.maint.mpi", description=__doc__.split("\n\n")[0],
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".", help="folder for NAME.json and NAME.md")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("compare")
    c.add_argument("one")
    c.add_argument("two")
    s = sub.add_parser("scaling")
    s.add_argument("base")
    s.add_argument("runs", nargs="+")
    k = sub.add_parser("count")
    k.add_argument("--batch", type=int, default=5000)
    m = sub.add_parser("model")
    m.add_argument("counts")
    m.add_argument("scaling", help="scaling.json: its first run (1 rank x 1 thread) gives the core's FLOP rate")
    a = ap.parse_args(argv)
    out = Path(a.out)
    if a.cmd == "compare":
        r = compare(a.one, a.two)
        _write(out, "compare", r, compare_md(r))
    elif a.cmd == "scaling":
        r = scaling(a.base, a.runs)
        _write(out, "scaling", r, scaling_md(r))
    elif a.cmd == "count":
        import logging

        logging.basicConfig(level=logging.WARNING)
        r = count(a.batch)
        atomic_write_json(out / "counts.json", r)
        print(json.dumps(r, indent=1))
    else:
        counts = json.loads(Path(a.counts).read_text())
        base = json.loads(Path(a.scaling).read_text())["rows"][0]
        key = str(base["hidden"])
        if key not in counts:
            raise SystemExit(f"nmfdnn mpi: error: {a.counts} has no counts of {key}, the network of the scaling runs")
        c = counts[key]
        rate = (c["F_par"] + c["F_rep"]) / (base["batch_seconds"] - base["comm_seconds"])
        r = json.loads(json.dumps(model(counts, rate)))  # the keys as the JSON file has them
        _write(out, "model", r, model_md(r))
        atomic_write_bytes(out / "summary.md", summary_md(r, json.loads(Path(a.scaling).read_text())).encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
