"""``python -m nmfdnn.maint.claims outputs/table1`` (``make claims``): the paper's three claims (Sec. 5),
each with its evidence and a verdict, generated from Table 1's report (``report.json``) and, for the
time claim, from the runs timed alone (``outputs/table1-times/report.json``, when it exists).

Verdicts compare 95 % t-intervals over seeds, as the report does: *similar* when the two intervals
overlap, *better* / *worse* when one lies wholly below / above the other. Nothing is typed: rerun the
tool when a report changes (a test checks that the committed ``claims.md`` is current).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ..errors import NmfdnnError
from ..fileio import atomic_write_bytes

DEEP = ("1500-1000-500", "2000-1500-1000-500")  # the paper's "deeper networks" (its two deepest rows)


def _interval(mean, ci):
    ci = 0.0 if ci is None or (isinstance(ci, float) and math.isnan(ci)) else ci
    return mean - ci, mean + ci


def compare(a_mean, a_ci, b_mean, b_ci) -> str:
    """``better`` (a wholly below b), ``worse`` (wholly above) or ``similar`` (the intervals overlap)."""
    (alo, ahi), (blo, bhi) = _interval(a_mean, a_ci), _interval(b_mean, b_ci)
    return "better" if ahi < blo else "worse" if alo > bhi else "similar"


def _rows(report: list[dict]) -> dict:
    """The MNIST group of each (solver, network) with the most runs."""
    best: dict = {}
    for r in report:
        if r.get("dataset") != "mnist":
            continue
        key = (r["solver"], r["hidden"])
        if key not in best or r["n"] > best[key]["n"]:
            best[key] = r
    return best


def _fmt(mean, ci) -> str:
    return f"{mean:.2f} ± {ci:.2f}" if ci is not None and not math.isnan(ci) else f"{mean:.2f}"


SAME_TIME = 1.25  # "about the same time": within a factor of 1.25 either way


def _both(rows: dict, nets) -> list[tuple]:
    """``(network, NMF row, BP row)`` for each network of ``nets`` that has rows of both solvers."""
    return [(h, rows[("nmf", h)], rows[("bp", h)]) for h in nets if ("nmf", h) in rows and ("bp", h) in rows]


def _times(t: dict, nets, rows) -> list[str]:
    """Claim 3 from the runs timed alone: seconds per phase, NMF / BP, beside the paper's totals."""
    lines = ["| network | NMF pre-train / fine-tune s | BP pre-train / fine-tune s | NMF / BP total | paper NMF / BP s |",
             "|---|---|---|---|---|"]
    faster, same, done = [], [], []
    for h, n, b in _both(t, nets):
        done.append(h)
        pn, pb = (rows.get(("nmf", h)) or {}).get("paper") or {}, (rows.get(("bp", h)) or {}).get("paper") or {}
        paper = f"{pn['seconds']:.0f} / {pb['seconds']:.0f} = {pn['seconds'] / pb['seconds']:.2f}" if pn and pb else "—"
        lines.append(f"| {h} | {n['pretrain_seconds']:.0f} / {n['finetune_seconds']:.0f} | "
                     f"{b['pretrain_seconds']:.0f} / {b['finetune_seconds']:.0f} | "
                     f"{n['total_seconds'] / b['total_seconds']:.2f} | {paper} |")
        faster.append(n["pretrain_seconds"] < b["pretrain_seconds"])
        r = n["finetune_seconds"] / b["finetune_seconds"]
        same.append(1 / SAME_TIME <= r <= SAME_TIME)
    holds = "holds" if faster and all(faster) and all(same) else "holds in part" if any(faster) or any(same) \
        else "does not hold here"
    missing = [h for h in nets if h not in done]
    return lines + ["", f"3. *NMF's autoencoder is faster, its fine-tuning about as fast as backprop's* (runs timed alone, "
                        f"seed 0, BLAS threads = cores; NMF in float64, BP in float32; about as fast: within "
                        f"{SAME_TIME}x): **{holds}** — autoencoder faster on {sum(faster)} of {len(done)} networks, "
                        f"fine-tuning within {SAME_TIME}x on {sum(same)} of {len(done)}"
                        + (f"; not yet timed: {', '.join(missing)}" if missing else "") + "."]


def claims(table1: Path, times: Path | None = None) -> str:
    """The claims section in Markdown."""
    try:
        report = json.loads((Path(table1) / "report.json").read_text())
    except (OSError, ValueError) as e:
        raise NmfdnnError(f"{table1}/report.json: unreadable ({e}); run make table1 first") from None
    rows = _rows(report)
    nets = sorted({h for (_, h) in rows}, key=lambda h: len(h.split("-")))
    lines = ["| network | NMF test % (n) | our BP test % (n) | paper NMF | paper BP | NMF vs our BP | NMF vs paper BP |",
             "|---|---|---|---|---|---|---|"]
    verdict1, verdict2_ours, verdict2_paper = [], [], []
    for h, nmf, bp in _both(rows, nets):
        pn, pb = nmf.get("paper") or {}, bp.get("paper") or {}
        ours = compare(nmf["test_error"], nmf["test_ci"], bp["test_error"], bp["test_ci"])
        theirs = compare(nmf["test_error"], nmf["test_ci"], pb["test_error"], pb["test_ci"]) if pb else "—"
        verdict1.append(ours in ("similar", "better"))
        if h in DEEP:
            verdict2_ours.append(ours == "better")
            verdict2_paper.append(theirs == "better")
        lines.append(f"| {h} | {_fmt(nmf['test_error'], nmf['test_ci'])} ({nmf['n']}) | "
                     f"{_fmt(bp['test_error'], bp['test_ci'])} ({bp['n']}) | "
                     f"{_fmt(pn['test_error'], pn['test_ci']) if pn else '—'} | "
                     f"{_fmt(pb['test_error'], pb['test_ci']) if pb else '—'} | {ours} | {theirs} |")

    def verdict(flags):
        return "holds" if flags and all(flags) else "holds in part" if any(flags) else "does not hold here"

    out = ["Generated by `make claims` from [outputs/table1](outputs/table1/report.md) (95 % t-intervals "
           "over seeds; *similar*: they overlap).", ""]
    out += lines + [""]
    out.append(f"1. *NMF reaches error rates similar to backprop for every network*: **{verdict(verdict1)}** "
               f"({sum(verdict1)} of {len(verdict1)} networks similar or better than our BP).")
    out.append(f"2. *NMF is better with deeper networks* ({', '.join(DEEP)}): against the paper's BP "
               f"**{verdict(verdict2_paper)}**, against our BP **{verdict(verdict2_ours)}**.")
    if times is not None and (Path(times) / "report.json").is_file():
        out += [""] + _times(_rows(json.loads((Path(times) / "report.json").read_text())), nets, rows)
    else:
        out.append("3. *NMF's autoencoder is faster, its fine-tuning as fast as backprop's*: **not measured yet** "
                   "(Table 1's seconds come from two runs sharing two cores; the runs timed alone, "
                   "outputs/table1-times, do not exist yet).")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    table1 = Path(argv[0] if argv else "outputs/table1")
    text = claims(table1, table1.parent / "table1-times")
    atomic_write_bytes(table1 / "claims.md", text.encode())
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
