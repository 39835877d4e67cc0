"""nmfdnn report: grouping by config, Student-t intervals, outputs, the paper comparison."""

import json
import math

import numpy as np
import pytest
from omegaconf import OmegaConf
from scipy import stats

from util import compose_train
from nmfdnn.tools.report import collect, load_paper_table, report, t_interval


@pytest.mark.parametrize("values", [[1.5, 1.7, 1.6], [3.0, 3.5], [0.1, 0.4, 0.2, 0.3, 0.25, 0.9, 0.5]])
def test_interval_agrees_with_scipy(values):
    mean, half = t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert mean - half == pytest.approx(lo) and mean + half == pytest.approx(hi)


def test_single_value_has_no_interval():
    assert math.isnan(t_interval([2.0])[1])


def fake_run(d, seed, hidden, test_error, status="finished", solver="nmf", extra=()):
    d.mkdir(parents=True)
    cfg = compose_train([f"hidden={hidden}", f"seed={seed}"] + (["solver=bp"] if solver == "bp" else []) + list(extra))
    (d / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (d / "metrics.json").write_text(json.dumps(dict(
        status=status, seed=seed, train_error=test_error / 2, test_error=test_error, pretrain_seconds=1.0,
        finetune_seconds=2.0, total_seconds=3.5)))


def test_groups_ignore_seed_and_skip_unfinished(tmp_path, capsys):
    for i, e in enumerate([1.4, 1.6, 1.5]):
        fake_run(tmp_path / f"a{i}", i, "[1000,500]", e)
    fake_run(tmp_path / "b0", 0, "[500]", 3.7)
    fake_run(tmp_path / "c0", 1, "[500]", 9.9, status="interrupted")
    fake_run(tmp_path / "d0", 0, "[1000,500]", 1.3, solver="bp")
    groups, warnings = collect([tmp_path])
    assert sorted(len(g.runs) for g in groups) == [1, 1, 3]
    assert len(warnings) == 1 and "not finished" in warnings[0]
    rows = report([tmp_path], compare="paper-table1")
    big = next(r for r in rows if r["hidden"] == "1000-500" and r["solver"] == "nmf")
    assert big["n"] == 3 and big["test_error"] == pytest.approx(1.5)
    assert big["test_ci"] == pytest.approx(stats.t.ppf(0.975, 2) * np.std([1.4, 1.6, 1.5], ddof=1) / math.sqrt(3))
    assert big["paper"]["test_error"] == 1.50 and big["test_diff"] == pytest.approx(0.0)
    assert big["versus_paper"] == "overlaps"
    for ext in ("md", "csv", "tex", "json"):
        assert (tmp_path / f"report.{ext}").exists()
    out = capsys.readouterr().out
    assert "single run" in out and "not finished" in out
    assert "1.50 ± 0.060" in (tmp_path / "report.md").read_text()  # the paper's row beside ours


def test_paper_table_has_all_rows():
    rows = load_paper_table("paper-table1")
    assert len(rows) == 8 and {r["solver"] for r in rows} == {"nmf", "bp"}
    assert next(r for r in rows if r["solver"] == "nmf" and r["hidden"] == "1000-500")["test_error"] == 1.50


def test_compare_names_every_key_that_differs_from_the_papers_setting(tmp_path, capsys):
    """The paper preset is like-for-like; the shipped defaults differ in named keys (iteration counts,
    pseudo-inverse routes); a regulariser or a validation split is named too."""
    fake_run(tmp_path / "paper", 0, "[500]", 3.7, extra=["experiment=paper"])
    fake_run(tmp_path / "defaults", 0, "[1000,500]", 1.5)
    fake_run(tmp_path / "reg", 0, "[1000,500]", 1.4, extra=["solver.alpha=0.001", "dataset.val_size=10000"])
    rows = {r["hidden"] + str(r["paper_differences"][-1:]): r for r in report([tmp_path], compare="paper-table1")}
    paper = next(r for r in rows.values() if r["hidden"] == "500")
    assert paper["paper_setting"] and paper["paper_differences"] == []
    defaults = next(r for r in rows.values() if r["hidden"] == "1000-500" and "solver.alpha" not in str(r["paper_differences"]))
    assert "solver.lsq_iters=1 (paper: 10)" in defaults["paper_differences"]
    assert "solver.pinv=chol (paper: svd)" in defaults["paper_differences"]
    assert "solver.input_pinv=chol (paper: literal)" in defaults["paper_differences"]
    reg = next(r for r in rows.values() if "solver.alpha" in str(r["paper_differences"]))
    assert "solver.alpha=0.001 (paper: 0.0)" in reg["paper_differences"]
    assert "dataset.val_size=10000 (paper: 0)" in reg["paper_differences"]
    out = capsys.readouterr().out
    assert "differs from the paper's stated setting in" in out and "solver.ae_lsq_iters=3 (paper: 10)" in out


def test_versus_paper_compares_the_intervals():
    from nmfdnn.tools.report import versus

    assert versus(1.40, 0.03, 1.50, 0.06) == "better"  # 1.43 < 1.44
    assert versus(1.42, 0.03, 1.50, 0.06) == "overlaps"
    assert versus(1.64, 0.05, 1.50, 0.06) == "worse"  # 1.59 > 1.56
    assert versus(1.40, None, 1.50, 0.06) == "better" and versus(1.50, float("nan"), 1.50, 0.06) == "overlaps"


def test_groups_the_columns_cannot_tell_apart_name_their_setting():
    """A paper preset and a tuned one of the same data set, solver, network, dtype and epochs: each row
    names the keys in which they differ; a group with no twin names nothing."""
    from nmfdnn.tools.report import _head, _name_settings

    shown = {"dataset": "cifar10", "solver": "bp", "hidden": "1000-500", "dtype": "float32", "epochs": 10}
    a, b, c = dict(shown), dict(shown), dict(shown, hidden="500")
    cfg = {"solver.lr": 1e-3, "solver.lr_decay": 1.0, "solver.ae_epochs": 3, "seed": 0}
    pairs = [(a, cfg), (b, dict(cfg, **{"solver.lr_decay": 0.9, "solver.ae_epochs": 1, "seed": 1})), (c, cfg)]
    _name_settings(pairs)
    assert a["setting"] == "solver.ae_epochs=3 solver.lr_decay=1.0"
    assert b["setting"] == "solver.ae_epochs=1 solver.lr_decay=0.9"
    assert "setting" not in c
    assert _head([a, b, c])[-1] == "setting" and "setting" not in _head([c])


def test_a_legend_names_groups_that_differ_only_in_dtype_and_settings():
    """A figure's legend has no dtype column: groups of one network that differ in dtype (and a key) get
    both in their label; the report's table, which shows the dtype, names neither."""
    from nmfdnn.tools.plot import LEGEND_SHOWN
    from nmfdnn.tools.report import _name_settings

    def pair(dtype, alpha):
        r = {"dataset": "cifar10", "solver": "nmf", "hidden": "1000-500", "dtype": dtype, "epochs": 10}
        return r, {"dtype": dtype, "solver.alpha": alpha, "seed": 0, "backend.threads": 1 if alpha else 2}

    table, legend = [pair("float32", 0.5), pair("float64", 0.0)], [pair("float32", 0.5), pair("float64", 0.0)]
    _name_settings(table)
    _name_settings(legend, LEGEND_SHOWN)
    assert [r.get("setting") for r, _ in table] == [None, None]
    assert [r["setting"] for r, _ in legend] == ["dtype=float32 solver.alpha=0.5", "dtype=float64 solver.alpha=0.0"]
