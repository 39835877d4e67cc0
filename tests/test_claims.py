"""The paper's claims (nmfdnn.maint.claims): verdicts from 95 % intervals, and the committed
outputs/table1/claims.md is what the tool generates from the committed report."""

import json
from pathlib import Path

from nmfdnn.maint.claims import claims, compare

OUTPUTS = Path(__file__).resolve().parent.parent / "outputs"


def test_compare_by_intervals():
    assert compare(1.3, 0.05, 1.5, 0.05) == "better"
    assert compare(1.6, 0.05, 1.5, 0.04) == "worse"
    assert compare(1.52, 0.06, 1.42, 0.06) == "similar"  # the intervals overlap
    assert compare(1.5, float("nan"), 1.6, 0.05) == "better"  # a single run counts as a point


def row(solver, hidden, mean, ci, n=10, paper=None):
    return {"dataset": "mnist", "solver": solver, "hidden": hidden, "n": n, "test_error": mean, "test_ci": ci,
            "paper": paper}


def test_verdicts(tmp_path):
    p = lambda m, c: {"test_error": m, "test_ci": c}  # noqa: E731
    report = [row("nmf", "1000-500", 1.5, 0.05, paper=p(1.5, 0.06)), row("bp", "1000-500", 1.5, 0.05, paper=p(1.4, 0.08)),
              row("nmf", "1500-1000-500", 1.3, 0.03, paper=p(1.35, 0.03)),
              row("bp", "1500-1000-500", 1.4, 0.03, paper=p(1.9, 0.15)),
              row("bp", "1500-1000-500", 9.0, 0.1, n=2)]  # a smaller group of the same row is not used
    (tmp_path / "report.json").write_text(json.dumps(report))
    text = claims(tmp_path)
    assert "| 1500-1000-500 | 1.30 ± 0.03 (10) | 1.40 ± 0.03 (10) |" in text
    assert "every network*: **holds** (2 of 2" in text
    assert "against the paper's BP **holds**, against our BP **holds**." in text
    assert "not measured yet" in text


def test_the_committed_claims_are_current():
    assert (OUTPUTS / "table1" / "claims.md").read_text() == claims(OUTPUTS / "table1", OUTPUTS / "table1-times")


def test_time_claim_from_runs_timed_alone(tmp_path):
    p = {"test_error": 1.5, "test_ci": 0.06, "seconds": 310.0}
    q = {"test_error": 1.4, "test_ci": 0.08, "seconds": 330.0}
    report = [row("nmf", "1000-500", 1.5, 0.05, paper=p), row("bp", "1000-500", 1.5, 0.05, paper=q),
              row("nmf", "500", 3.4, 0.1), row("bp", "500", 1.8, 0.1)]
    (tmp_path / "t1").mkdir()
    (tmp_path / "t1" / "report.json").write_text(json.dumps(report))
    timed = [dict(row("nmf", "1000-500", 1.5, None, n=1), pretrain_seconds=20.0, finetune_seconds=110.0,
                  total_seconds=140.0),
             dict(row("bp", "1000-500", 1.4, None, n=1), pretrain_seconds=2.0, finetune_seconds=40.0,
                  total_seconds=44.0)]
    (tmp_path / "times").mkdir()
    (tmp_path / "times" / "report.json").write_text(json.dumps(timed))
    text = claims(tmp_path / "t1", tmp_path / "times")
    assert "| 1000-500 | 20 / 110 | 2 / 40 | 3.18 | 310 / 330 = 0.94 |" in text
    assert "**does not hold here** — autoencoder faster on 0 of 1 networks, fine-tuning within 1.25x on 0 of 1; " \
           "not yet timed: 500." in text
