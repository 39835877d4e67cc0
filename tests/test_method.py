"""Algorithm 5 and Algorithm 4 end to end on small synthetic problems."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from nmfdnn.method.autoencoder import pretrain
from nmfdnn.config import NMFSolverConfig
from nmfdnn.data import one_hot
from nmfdnn.data.synthetic import make_synthetic
from nmfdnn.method.finetune import finetune_epoch
from nmfdnn.method.layers import build
from nmfdnn.method.settings import NMFSettings
from nmfdnn.method.linalg import input_svd
from nmfdnn.method.network import evaluate, forward
from nmfdnn.trainers import batches_for_epoch


def solver(**kw):
    base = dict(batch_size=300, ae_samples=400, ae_iters=2, ae_nmf_iters=5, ae_lsq_iters=5, input_threshold=1e-3)
    base.update(kw)
    return OmegaConf.structured(NMFSolverConfig(**base))


def setup(bk, n_classes=4, noise_seed=1):
    ds = make_synthetic(n_train=1200, n_test=400, n_features=30, n_classes=n_classes, seed=noise_seed)
    X = bk.asarray(ds.train.X)
    Y = bk.asarray(one_hot(ds.train.labels, ds.n_classes))
    return ds, X, Y


@pytest.mark.parametrize("bias", [False, True])
def test_pretrain_shapes_dtypes_and_fit(bk, bias):
    sol = solver(bias=bias)
    ds, X, Y = setup(bk)
    rng = np.random.default_rng(0)
    xsvd = input_svd(bk, X, sol.input_threshold, bias)
    J = np.sort(rng.choice(X.shape[1], sol.ae_samples, replace=False))
    net = build(30, 4, bias=bias, hidden=[40, 20])
    Ws = pretrain(bk, net, X, Y, J, xsvd, NMFSettings.from_mapping(sol), rng)
    assert [W.shape for W in Ws] == [(40, 30 + bias), (20, 40 + bias), (4, 20 + bias)] == net.shapes
    assert all(W.dtype == bk.dtype and np.isfinite(W).all() for W in Ws)
    err, _ = evaluate(bk, net, Ws, bk.asarray(ds.test.X), ds.test.labels)
    assert err < 50.0  # far better than chance (75 %) right after pre-training


@pytest.mark.parametrize("hidden", [[30], [40, 20], [40, 30, 20]])
def test_finetuning_decreases_objective(bk64, hidden):
    sol = solver(lsq_iters=3)
    ds, X, Y = setup(bk64)
    rng = np.random.default_rng(1)
    xsvd = input_svd(bk64, X, sol.input_threshold)
    J = np.sort(rng.choice(X.shape[1], sol.ae_samples, replace=False))
    net = build(30, 4, hidden=hidden)
    Ws = pretrain(bk64, net, X, Y, J, xsvd, NMFSettings.from_mapping(sol), rng)
    _, obj0 = evaluate(bk64, net, Ws, X, ds.train.labels)
    for _ in range(3):
        finetune_epoch(bk64, net, Ws, X, Y, xsvd, batches_for_epoch(X.shape[1], sol.batch_size, rng),
                       NMFSettings.from_mapping(sol))
    err1, obj1 = evaluate(bk64, net, Ws, X, ds.train.labels)
    assert obj1 < obj0
    assert all(np.isfinite(W).all() for W in Ws)
    assert all((Z >= 0).all() for Z in forward(bk64, net, Ws, X)[1:])


def test_batches_cover_every_sample_once(rng):
    bs = batches_for_epoch(1003, 100, rng)
    assert len(bs) == 11
    assert np.array_equal(np.sort(np.concatenate(bs)), np.arange(1003))
    assert max(b.size for b in bs) - min(b.size for b in bs) <= 1


def test_rich_progress_counts_fine_tuning_epochs_only():
    from omegaconf import OmegaConf

    from nmfdnn.events import RunStart
    from nmfdnn.progress import RichReporter

    r = RichReporter()
    r.run_start(RunStart(OmegaConf.create({"hidden": [5, 5], "epochs": 3}), None, [], n_batches=4))
    for epoch in range(4):  # 0 = the evaluation after pre-training
        r.epoch_start(epoch)
        for b in range(4):
            r.batch_done(epoch, b, None)
        r.epoch_end(dict(epoch=epoch, train_error=1.0, test_error=1.0, objective=1.0, epoch_seconds=0.1))
    r.run_end(None)
    tasks = {t.description: t for t in r.progress.tasks}
    assert tasks["epochs"].completed == 3 and tasks["batches"].completed == 4


def test_normalize_rows_keeps_the_nmf_product(bk64):
    """Beyond the paper: the NMF pair rescaled so that every row of H peaks at 1 (a zero row stays
    zero); W H, hence the objective of (9), is unchanged."""
    from nmfdnn.method.nmf import normalize_rows

    rng = np.random.default_rng(3)
    W, H = rng.random((7, 4)), rng.random((4, 50)) * np.array([[1e-9], [3.0], [0.0], [1e4]])
    W2, H2 = normalize_rows(bk64, W, H)
    np.testing.assert_allclose(W2 @ H2, W @ H, rtol=1e-12)
    np.testing.assert_allclose(H2.max(axis=1), [1.0, 1.0, 0.0, 1.0])


@pytest.mark.slow
def test_ae_normalize_keeps_a_deep_network_with_a_bias_alive(mnist_data_dir):
    """With a bias, Algorithm 5's shrinking NMF factors (about 1e-3 per layer) drown under the row of
    ones and a 4-layer network leaves pre-training at chance; unit-scale factors keep it learning.
    Measured on 2 cores ([300,300,300,300], 4,000 / 1,000 MNIST images, seed 0): train error after
    pre-training 89.28 % without, 7.38 % with ``solver.ae_normalize``."""
    from nmfdnn.data import load_dataset
    from nmfdnn.train import fit

    from util import compose_train

    errors = []
    for normalize in ("false", "true"):
        cfg = compose_train([f"dataset.data_dir={mnist_data_dir}", "experiment=table1_nmf_deep", "solver.bias=true",
                             "hidden=[300,300,300,300]", "epochs=0", "dataset.train_subset=4000",
                             "dataset.test_subset=1000", "solver.batch_size=2000", "solver.ae_samples=2000",
                             "progress=false", f"solver.ae_normalize={normalize}"])
        errors.append(fit(cfg, load_dataset(cfg.dataset)).history[0]["train_error"])
    assert errors[0] > 80.0 and errors[1] < 20.0
