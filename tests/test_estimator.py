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
    est = NMFNetClassifier(hidden=(16,), epochs=2, solver_params=dict(batch_size=200, ae_samples=300, ae_iters=2))
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


@pytest.mark.parametrize("est", [
    # scikit-learn's checks train on tiny 2-D blobs and demand high accuracy after one fit: BP gets
    # enough steps there with cross-entropy, lr 1e-2 and 30 epochs of 3 batches.
    BPNetClassifier(hidden=(16,), epochs=30, solver_params={"ae_epochs": 0, "lr": 1e-2, "loss": "xent"}),
    # Without bias a ReLU network is positively homogeneous (f(W a x) = a f(W x)), so blobs in 2-D
    # are separable by angle only and check_classifiers_train fails; with bias=True all checks pass.
    NMFNetClassifier(hidden=(16,), epochs=2, solver_params={"ae_iters": 1, "bias": True}),
], ids=["bp", "nmf"])
def test_sklearn_estimator_checks(est):
    """scikit-learn's own estimator checks, all of them (scikit-learn is a dev dependency; the test
    is skipped where it is not installed)."""
    pytest.importorskip("sklearn")
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(est, on_fail=None)
    failed = [(r["check_name"], repr(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed


@pytest.mark.slow
def test_mnist_subset_cli_and_estimator_agree(tmp_path, mnist_data_dir):
    overrides = [f"dataset.data_dir={mnist_data_dir}", "dataset.train_subset=6000", "dataset.test_subset=1000",
                 "hidden=[100]", "epochs=1", "progress=false"]
    cfg = compose_train(overrides)
    metrics = run(cfg, tmp_path)
    ds = load_dataset(cfg.dataset)
    est = NMFNetClassifier(hidden=(100,), epochs=1).fit(ds.train.X.T, ds.train.labels)
    assert 100 * (1 - est.score(ds.test.X.T, ds.test.labels)) == pytest.approx(metrics["test_error"], abs=1e-9)


@pytest.mark.parametrize("cls,solver", [(NMFNetClassifier, "nmf"), (BPNetClassifier, "bp")])
def test_a_conv_net_from_the_estimator_equals_the_cli_run_and_loads_back(tmp_path, cls, solver):
    """``conv`` + ``image_shape``: the same weights as ``nmfdnn train`` with the same keys on the same
    images, the same test error from the fitted and from the loaded estimator."""
    conv = [{"channels": 3, "kernel": 3, "pool": 2}]
    params = dict(batch_size=300, ae_samples=300) if solver == "nmf" else dict(batch_size=100, ae_epochs=1)
    keys = [f"solver={solver}", "dataset=synthetic", "dataset.image=[1,8,8]", "dataset.n_train=600", "hidden=[8]",
            "epochs=2", "progress=false", "conv=[{channels:3,kernel:3,pool:2}]",
            *(f"solver.{k}={v}" for k, v in params.items())]
    metrics = run(compose_train(keys), tmp_path)
    ds = load_dataset(compose_train(keys).dataset)
    est = cls(hidden=(8,), epochs=2, conv=conv, image_shape=(1, 8, 8), solver_params=params)
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
