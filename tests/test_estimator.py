"""The scikit-learn style estimators, nmfdnn.load and nmfdnn eval."""

import json
import subprocess

import numpy as np
import pytest

from util import compose_train, env_without_full_error, nmfdnn_command
from nmfdnn import BPNetClassifier, NMFNetClassifier, load
from nmfdnn.data import load_dataset
from nmfdnn.train import run


def synthetic_arrays():
    ds = load_dataset(compose_train(["dataset=synthetic"]).dataset)
    return ds.train.X.T, ds.train.labels, ds.test.X.T, ds.test.labels


def test_cli_and_estimator_give_identical_weights(tmp_path, tiny_run):
    run(compose_train(tiny_run), tmp_path)
    X, y, Xt, yt = synthetic_arrays()
    est = NMFNetClassifier(hidden=(16,), epochs=2, solver_params=dict(batch_size=200, ae_samples=300, ae_iters=2,
                                                                      bias=False))
    est.fit(X, y)
    with np.load(tmp_path / "model.npz") as z:
        for i, W in enumerate(est.weights_):
            assert np.array_equal(W, z[f"W{i + 1}"])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert est.score(Xt, yt) == pytest.approx(1 - saved["test_error"] / 100, abs=1e-12)


def test_predict_labels_scores_and_params():
    X, y, Xt, yt = synthetic_arrays()
    names = np.array(["ant", "bee", "cat"])
    est = NMFNetClassifier(hidden=(12,), epochs=1, solver_params={"ae_iters": 1})
    assert est.fit(X, names[y]) is est
    assert list(est.classes_) == ["ant", "bee", "cat"]
    assert est.decision_function(Xt).shape == (Xt.shape[0], 3)
    assert set(est.predict(Xt)) <= set(names)
    assert est.score(Xt, names[yt]) > 0.6
    p = est.get_params()
    assert p["hidden"] == (12,) and p["solver_params"] == {"ae_iters": 1}
    est.set_params(epochs=3)
    assert est.epochs == 3
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        est.set_params(nonsense=1)
    assert repr(est).startswith("NMFNetClassifier(") and "hidden=(12,)" in repr(est)


def test_bp_estimator_learns():
    X, y, Xt, yt = synthetic_arrays()
    est = BPNetClassifier(hidden=(16,), epochs=5, dtype="float32", solver_params={"batch_size": 50, "ae_epochs": 1})
    assert est.fit(X, y).score(Xt, yt) > 0.6


@pytest.mark.parametrize("kwargs,message", [
    (dict(hidden=(0,)), "hidden"),
    (dict(solver_params={"nope": 1}), "bad solver_params"),
    (dict(solver_params={"batch_size": 10**6}), "larger than the training set"),
])
def test_estimator_validation_is_the_clis(kwargs, message):
    from nmfdnn.errors import NmfdnnError

    X, y, _, _ = synthetic_arrays()
    with pytest.raises((ValueError, NmfdnnError), match=message):
        NMFNetClassifier(**kwargs).fit(X, y)


def test_nmf_estimator_rejects_negative_input():
    X, y, _, _ = synthetic_arrays()
    with pytest.raises(ValueError, match="Negative values"):
        NMFNetClassifier(hidden=(4,)).fit(X - 1, y)


def test_unfitted_estimator():
    with pytest.raises(AttributeError, match="not fitted"):
        NMFNetClassifier().predict(np.zeros((2, 3)))


def test_load_and_eval_reproduce_the_run(tmp_path, tiny_run):
    run_dir = tmp_path / "run"
    r = subprocess.run(nmfdnn_command() + ["train", *tiny_run, f"hydra.run.dir={run_dir}"], capture_output=True, text=True,
                       env=env_without_full_error(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    r = subprocess.run(nmfdnn_command() + ["eval", str(run_dir)], capture_output=True, text=True,
                       env=env_without_full_error(), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["test_error"] == metrics["test_error"] and ev["train_error"] == metrics["train_error"]
    est = load(run_dir)
    _, _, Xt, yt = synthetic_arrays()
    assert 100 * (1 - est.score(Xt, yt)) == pytest.approx(metrics["test_error"], abs=1e-9)


def test_eval_of_a_directory_without_model(tmp_path):
    r = subprocess.run(nmfdnn_command() + ["eval", str(tmp_path)], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "Traceback" not in r.stderr and "model.npz missing" in r.stderr


try:
    from sklearn.utils.estimator_checks import parametrize_with_checks
except ImportError:  # scikit-learn is a dev dependency: without it its checks are skipped
    def parametrize_with_checks(_):
        return pytest.mark.skip(reason="scikit-learn is not installed")


# The checks fit on a few samples: the NMF estimator says when a mini-batch has no more samples than
# its widest layer (bias row included)
@pytest.mark.filterwarnings("ignore:.* samples are no more than the widest hidden layer")
@parametrize_with_checks([NMFNetClassifier(), BPNetClassifier()])
def test_sklearn_check_with_the_default_parameters(estimator, check):
    """scikit-learn's own estimator checks, every one, with the estimators' default parameters."""
    check(estimator)


def test_the_estimators_take_every_network_key():
    """Each top-level key of ``nmfdnn train`` that says what is trained is a parameter of both
    estimators, its default the schema's (``hidden`` and ``epochs`` are the estimators' own)."""
    from omegaconf import OmegaConf

    from nmfdnn.config import TrainConfig
    from nmfdnn.estimator import NETWORK_KEYS

    schema = OmegaConf.to_container(OmegaConf.structured(TrainConfig), enum_to_str=True)
    assert {"hidden", "conv", "activation", "activation_slope", "activation_cap", "activation_beta", "epochs",
            "seed", "dtype"} == set(NETWORK_KEYS)
    for cls in (NMFNetClassifier, BPNetClassifier):
        params = cls().get_params()
        for key in set(NETWORK_KEYS) - {"hidden", "epochs"}:
            assert params[key] == (tuple(schema[key]) if key == "conv" else schema[key]), (cls, key)


@pytest.mark.parametrize("kwargs,message", [
    (dict(activation_slope=1.5, activation="leaky_relu"), "activation_slope must be in (0, 1), got 1.5"),
    (dict(activation_cap=0.0), "activation_cap must be a finite positive number, got 0.0"),
    (dict(activation="tanh"), "activation must be one of relu, leaky_relu, capped_relu, softplus, got 'tanh'"),
    (dict(epochs=-1), "epochs must be an integer >= 0, got -1"),
    (dict(solver_params={"batch_size": 0}), "solver.batch_size must be a positive integer, got 0"),
    (dict(threads=0), "backend.threads must be a positive integer, got 0"),
    (dict(activation_slope="steep"), "bad activation_slope: Value 'steep' of type 'str' could not be converted"),
])
def test_the_estimators_check_every_key_as_the_command_line_does(kwargs, message):
    import re

    X, y, _, _ = synthetic_arrays()
    for cls in (NMFNetClassifier, BPNetClassifier):
        with pytest.raises(ValueError, match="^" + re.escape(message)):
            cls(**{"hidden": (8,), "epochs": 1, **kwargs}).fit(X, y)


def test_a_loaded_run_refits_with_its_own_activation_parameters(tmp_path, tiny_run):
    """``load`` of a leaky_relu run with slope 0.5, cloned and fitted again on the same data: the
    run's keys, slope included, so the weights of ``nmfdnn train`` again."""
    from sklearn.base import clone

    run(compose_train([*tiny_run, "activation=leaky_relu", "activation_slope=0.5"]), tmp_path)
    loaded = load(tmp_path)
    assert loaded.activation_slope == 0.5 and loaded.get_params()["solver_params"]["bias"] is False
    X, y, _, _ = synthetic_arrays()
    refit = clone(loaded).fit(X, y)
    assert refit.config_.activation_slope == 0.5
    with np.load(tmp_path / "model.npz") as z:
        assert all(np.array_equal(W, z[f"W{i + 1}"]) for i, W in enumerate(refit.weights_))


@pytest.mark.slow
def test_mnist_subset_cli_and_estimator_agree(tmp_path, mnist_data_dir):
    overrides = [f"dataset.data_dir={mnist_data_dir}", "dataset.train_subset=6000", "dataset.test_subset=1000",
                 "hidden=[100]", "epochs=1", "progress=false"]
    cfg = compose_train(overrides)
    metrics = run(cfg, tmp_path)
    ds = load_dataset(cfg.dataset)
    est = NMFNetClassifier(hidden=(100,), epochs=1, solver_params={"bias": False}).fit(ds.train.X.T, ds.train.labels)
    assert 100 * (1 - est.score(ds.test.X.T, ds.test.labels)) == pytest.approx(metrics["test_error"], abs=1e-9)


@pytest.mark.parametrize("cls,solver", [(NMFNetClassifier, "nmf"), (BPNetClassifier, "bp")])
def test_a_conv_net_from_the_estimator_equals_the_cli_run_and_loads_back(tmp_path, cls, solver):
    """``conv`` + ``image_shape``: the same weights as ``nmfdnn train`` with the same keys on the same
    images, the same test error from the fitted and from the loaded estimator."""
    conv = [{"channels": 3, "kernel": 3, "pool": 2}]
    params = dict(batch_size=300, ae_samples=300) if solver == "nmf" else dict(batch_size=100, ae_epochs=1)
    cli_defaults = dict(bias=False) if solver == "nmf" else dict(loss="mse")  # where the estimators' differ
    keys = [f"solver={solver}", "dataset=synthetic", "dataset.image=[1,8,8]", "dataset.n_train=600", "hidden=[8]",
            "epochs=2", "progress=false", "conv=[{channels:3,kernel:3,pool:2}]",
            *(f"solver.{k}={v}" for k, v in params.items())]
    metrics = run(compose_train(keys), tmp_path)
    ds = load_dataset(compose_train(keys).dataset)
    est = cls(hidden=(8,), epochs=2, conv=conv, image_shape=(1, 8, 8), solver_params={**params, **cli_defaults})
    est.fit(ds.train.X.T, ds.train.labels)
    with np.load(tmp_path / "model.npz") as z:
        for i, W in enumerate(est.weights_):
            assert np.array_equal(W, z[f"W{i + 1}"])
    err = 100 * (1 - est.score(ds.test.X.T, ds.test.labels))
    assert err == pytest.approx(metrics["test_error"], abs=1e-9)
    assert 100 * (1 - load(tmp_path).score(ds.test.X.T, ds.test.labels)) == pytest.approx(err, abs=1e-9)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(conv=[{"channels": 3, "kernel": 3}]), "conv layers need image_shape"),
    (dict(conv=[{"channels": 3, "kernel": 3}], image_shape=(1, 4, 4)), "does not fit rows of 64 features"),
    (dict(conv=[{"channels": 3, "kernel": 9}], image_shape=(1, 8, 8)), "kernel 9 is larger"),
    (dict(conv=[{"channels": 3, "kernel": 3, "dilation": 2}], image_shape=(1, 8, 8)), "bad conv"),
])
def test_a_conv_estimator_that_does_not_fit_says_why(kwargs, needle):
    X = np.random.default_rng(0).random((400, 64))
    with pytest.raises(ValueError, match=needle):
        NMFNetClassifier(hidden=(8,), epochs=1, solver_params=dict(batch_size=200, ae_samples=200), **kwargs).fit(
            X, np.arange(400) % 3)
