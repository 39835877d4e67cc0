"""The backprop baseline: gradients against finite differences, Adam against the textbook."""

import numpy as np
import pytest

from nmfdnn.baselines.backprop import Adam, loss_and_grads
from nmfdnn.data import one_hot
from nmfdnn.method.layers import Dense, dense


@pytest.mark.parametrize("loss", ["mse", "xent"])
@pytest.mark.parametrize("bias", [False, True])
def test_gradients_match_central_differences(bk64, loss, bias):
    rng = np.random.default_rng(3)
    sizes = [6, 5, 4, 3]
    Ws = [rng.standard_normal((sizes[i + 1], sizes[i] + bias)) for i in range(3)]
    X = rng.random((6, 9))
    Y = one_hot(rng.integers(0, 3, 9), 3)
    net = dense(Ws, bias)
    _, grads = loss_and_grads(bk64, net, Ws, X, Y, loss)
    h = 1e-6
    for i, W in enumerate(Ws):
        num = np.zeros_like(W)
        for idx in np.ndindex(W.shape):
            old = W[idx]
            W[idx] = old + h
            fp, _ = loss_and_grads(bk64, net, Ws, X, Y, loss)
            W[idx] = old - h
            fm, _ = loss_and_grads(bk64, net, Ws, X, Y, loss)
            W[idx] = old
            num[idx] = (fp - fm) / (2 * h)
        err = np.linalg.norm(grads[i] - num) / np.linalg.norm(num)
        assert err < 1e-6, (i, err)


def test_adam_matches_hand_computed_steps(bk64):
    """Two steps of Kingma and Ba's Algorithm 1 on a 2-vector, computed by hand:
    g1 = (1, -2): m = (0.1, -0.2), v = (0.001, 0.004), m_hat = (1, -2), v_hat = (1, 4),
    theta = (1, 1) - 0.1 * (1/(1+eps), -2/(2+eps)) = (0.9, 1.1) up to eps.
    g2 = (0.5, 0.5): m = (0.14, -0.13), v = (0.0012490, 0.0042460); t = 2."""
    p = [np.array([1.0, 1.0])]
    opt = Adam(bk64, p, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    opt.step(p, [np.array([1.0, -2.0])])
    np.testing.assert_allclose(p[0], [0.9, 1.1], rtol=0, atol=1e-8)
    opt.step(p, [np.array([0.5, 0.5])])
    m = np.array([0.9 * 0.1 + 0.1 * 0.5, 0.9 * -0.2 + 0.1 * 0.5])
    v = np.array([0.999 * 0.001 + 0.001 * 0.25, 0.999 * 0.004 + 0.001 * 0.25])
    np.testing.assert_allclose(opt.m[0], [0.14, -0.13], atol=1e-15)
    np.testing.assert_allclose(opt.v[0], v, atol=1e-15)
    m_hat, v_hat = m / (1 - 0.9 ** 2), v / (1 - 0.999 ** 2)
    expect = np.array([0.9, 1.1]) - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8)
    np.testing.assert_allclose(p[0], expect, rtol=0, atol=1e-7)


def test_glorot_range_and_zero_bias(bk64, rng):
    W = Dense(200, 300, bias=True).glorot(bk64, rng)
    a = np.sqrt(6 / 500)
    assert W.shape == (300, 201) and np.abs(W[:, :-1]).max() <= a and (W[:, -1] == 0).all()
    assert np.abs(W[:, :-1]).max() > 0.95 * a


def test_float32_gradients_keep_dtype(bk):
    rng = np.random.default_rng(0)
    Ws = [bk.asarray(rng.standard_normal((4, 6))), bk.asarray(rng.standard_normal((3, 5)))]
    _, grads = loss_and_grads(bk, dense(Ws, True), Ws, bk.asarray(rng.random((5, 7))),
                              bk.asarray(one_hot(np.arange(7) % 3, 3)), "xent")
    assert [g.dtype for g in grads] == [bk.dtype, bk.dtype] and [g.shape for g in grads] == [(4, 6), (3, 5)]


def _bp_trainer(bk, lr_decay, m=40, batch_size=10):
    from dataclasses import asdict

    from omegaconf import OmegaConf

    from nmfdnn.config import BPSolverConfig
    from nmfdnn.config.network import build_network
    from nmfdnn.trainers import BPTrainer

    rng = np.random.default_rng(1)
    sol = {**asdict(BPSolverConfig()), "lr_decay": lr_decay, "batch_size": batch_size, "ae_epochs": 0}
    cfg = OmegaConf.create({"solver": sol, "hidden": [5]})
    X, Y = bk.asarray(rng.random((6, m))), bk.asarray(one_hot(rng.integers(0, 3, m), 3))
    net = build_network(cfg, 6, None, 3)
    return BPTrainer(bk, cfg, net, X, Y, np.random.default_rng(2))


def test_lr_decay_sets_each_epochs_rate_from_the_step_count(bk64):
    """Fine-tuning epoch e (0-based) steps with lr * lr_decay**e, also when a run resumes mid-epoch
    (the epoch is read off Adam's step counter, which the checkpoint keeps)."""
    tr = _bp_trainer(bk64, 0.5)
    Ws = tr.pretrain()
    rates = []
    for _ in range(3):
        tr.epoch(Ws)
        rates.append(tr.opt.lr)
    assert tr.opt.t == 12 and rates == [1e-3, 5e-4, 2.5e-4]
    tr.opt.t = 2 * tr.n_batches + 1  # a checkpoint taken after batch 1 of epoch 3
    tr.epoch(Ws, start_batch=1)
    assert tr.opt.lr == 2.5e-4


def test_lr_decay_one_is_the_constant_rate(bk64):
    """lr_decay = 1 computes exactly what the solver computed before the key existed."""
    a, b = _bp_trainer(bk64, 1.0), _bp_trainer(bk64, 0.5)
    Wa, Wb = a.pretrain(), b.pretrain()
    a.epoch(Wa), b.epoch(Wb)  # epoch 1: both at lr
    assert all(np.array_equal(x, y) for x, y in zip(Wa, Wb))
    a.epoch(Wa), b.epoch(Wb)  # epoch 2: 1e-3 against 5e-4
    assert a.opt.lr == 1e-3 and not all(np.array_equal(x, y) for x, y in zip(Wa, Wb))


def test_archived_bp_runs_state_their_rate_schedule():
    """The archive stores effective configs: every committed bp run names its lr_decay (runs made before
    the key existed were archived with 1.0, what they computed), so no code reads a missing key."""
    from pathlib import Path

    from nmfdnn.archive import read_runs

    outputs = Path(__file__).resolve().parent.parent / "outputs"
    bp = [r for f in outputs.rglob("runs.jsonl") for r in read_runs(f) if r["config"]["solver"]["name"] == "bp"]
    assert len(bp) >= 40
    assert all("lr_decay" in r["config"]["solver"] for r in bp)
