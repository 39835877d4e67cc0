"""Activations and L1 penalties through the CLI (issue 38): every new key runs on
``dataset=synthetic hidden=[30] epochs=1 solver.batch_size=300`` with either solver it applies to, the
run's metrics report the sparsity reached, a bad value is one line with exit code 2, and the defaults
change nothing (the same weights as a run without the keys)."""

import json

import numpy as np
import pytest

from util import cli, one_line_error

QUICK = ["dataset=synthetic", "hidden=[30]", "epochs=1", "solver.batch_size=300", "progress=false"]

NEW_KEYS = [
    ["activation=leaky_relu"], ["activation=leaky_relu", "activation_slope=0.2"],
    ["activation=capped_relu"], ["activation=capped_relu", "activation_cap=1.5"],
    ["activation=softplus"], ["activation=softplus", "activation_beta=4"],
]
L1_KEYS = [["solver.l1_weights=0.01"], ["solver.l1_activations=0.01"], ["solver.input_energy=0.95"],
           ["solver.l1_weights=0.01", "solver.l1_activations=0.01", "activation=leaky_relu"]]


def train(tmp_path, extra, name="run"):
    d = tmp_path / name
    code, _, err = cli(["train", *QUICK, *extra, f"hydra.run.dir={d}"])
    assert code == 0, err[-2000:]
    return json.loads((d / "metrics.json").read_text()), d


@pytest.mark.parametrize("extra", NEW_KEYS + L1_KEYS, ids=lambda e: " ".join(e))
def test_every_new_key_runs_on_the_quick_synthetic_net_with_the_nmf_method(tmp_path, extra):
    m, _ = train(tmp_path, extra)
    assert m["status"] == "finished" and m["test_error"] < 50
    sp = m["info"]["sparsity"]
    assert 0 <= sp["weights"] <= 1 and 0 <= sp["activations"] <= 1


@pytest.mark.parametrize("extra", NEW_KEYS, ids=lambda e: " ".join(e))
def test_every_activation_runs_with_the_backprop_baseline(tmp_path, extra):
    m, _ = train(tmp_path, ["solver=bp", *extra])
    assert m["status"] == "finished"


def test_l1_on_the_weights_leaves_exact_zeros_and_reports_them(tmp_path):
    plain, _ = train(tmp_path, [], "plain")
    sparse, _ = train(tmp_path, ["solver.l1_weights=0.05"], "sparse")
    assert plain["info"]["sparsity"]["weights"] == 0.0
    assert sparse["info"]["sparsity"]["weights"] > 0.2
    relu, _ = train(tmp_path, ["solver.l1_activations=0.5"], "zsparse")
    assert relu["info"]["sparsity"]["activations"] > plain["info"]["sparsity"]["activations"]


def test_l1_on_the_activations_of_a_deeper_net_is_warned_about(tmp_path):
    """Algorithm 3's threshold is absolute and W_{i+1} Z_i scale-free: on two hidden layers, a warning."""
    d = tmp_path / "run"
    code, _, err = cli(["train", *QUICK, "hidden=[30,20]", "solver.l1_activations=0.01", f"hydra.run.dir={d}"])
    assert code == 0, err[-2000:]
    assert (d / "train.log").read_text().count("solver.l1_activations=0.01 with more than one hidden layer") == 1
    _, _, err = cli(["train", *QUICK, "solver.l1_activations=0.01", f"hydra.run.dir={tmp_path / 'one'}"])
    assert "more than one hidden layer" not in (tmp_path / "one" / "train.log").read_text() + err


def test_the_defaults_change_nothing(tmp_path):
    """``activation=relu`` with its parameters and zero penalties: the same weights as a run without them."""
    _, a = train(tmp_path, [], "a")
    _, b = train(tmp_path, ["activation=relu", "activation_slope=0.3", "solver.l1_weights=0",
                            "solver.l1_activations=0"], "b")
    with np.load(a / "model.npz") as za, np.load(b / "model.npz") as zb:
        assert all(np.array_equal(za[k], zb[k]) for k in za.files)


@pytest.mark.parametrize("extra,needle", [
    (["activation=tanh"], "activation must be one of relu, leaky_relu, capped_relu, softplus, got 'tanh'"),
    (["activation=leaky_relu", "activation_slope=1.5"], "activation_slope must be in (0, 1)"),
    (["activation_cap=0"], "activation_cap must be a finite positive number"),
    (["activation_beta=-1"], "activation_beta must be a finite positive number"),
    (["solver.l1_weights=-0.1"], "solver.l1_weights must be a finite number >= 0"),
    (["solver.l1_activations=nan"], "solver.l1_activations must be a finite number >= 0"),
    (["solver.safeguard=true", "solver.l1_weights=0.1"], "solver.safeguard does not combine"),
    (["solver=bp", "solver.l1_weights=0.1"], "l1_weights"),
    (["solver.input_energy=0"], "solver.input_energy must be in (0, 1]"),
])
def test_a_bad_activation_or_penalty_is_one_line(tmp_path, extra, needle):
    d = tmp_path / "run"
    code, _, err = cli(["train", *QUICK, *extra, f"hydra.run.dir={d}"])
    one_line_error(code, err, needle)


def test_the_bp_loss_names_of_issue_38_are_the_same_runs_and_the_report_names_them(tmp_path):
    """``solver.loss=squared`` is ``mse`` and ``cross_entropy`` is ``xent``: the same weights, one run
    identity; the report's BP rows say which loss they used."""
    from nmfdnn.config import effective
    from nmfdnn.tools.report import collect

    bp = ["solver=bp", "solver.ae_epochs=0"]
    _, a = train(tmp_path, [*bp, "solver.loss=squared"], "squared")
    _, b = train(tmp_path, [*bp, "solver.loss=mse"], "mse")
    _, c = train(tmp_path, [*bp, "solver.loss=cross_entropy"], "xent")
    with np.load(a / "model.npz") as za, np.load(b / "model.npz") as zb:
        assert all(np.array_equal(za[k], zb[k]) for k in za.files)
    assert effective({"solver": {"loss": "squared"}}) == effective({"solver": {"loss": "mse"}})
    groups, _ = collect([c, a])
    assert sorted(g.stats()["loss"] for g in groups) == ["cross_entropy", "squared"]
