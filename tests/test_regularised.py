"""Beyond the paper: the regularisers (ridge alpha, semi-NMF beta, Algorithm 3 lam), the step
safeguard, per-layer omega and the validation split (the search: test_tune.py)."""

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from util import compose_train
from nmfdnn.config import NMFSolverConfig
from nmfdnn.data import load_dataset
from nmfdnn.errors import NmfdnnError
from nmfdnn.method.linalg import (batch_input_pinv, input_svd, left_pinv, ridge_batch_input_pinv, ridge_left_pinv,
                                  ridge_right_pinv, right_pinv)
from nmfdnn.method.nonlinear_lsq import alg2_right, alg2_right_safe, alg3_left, alg3_left_safe
from nmfdnn.method.semi_nmf import update_w, update_z
from nmfdnn.train import fit


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# -- each regulariser: the plain update at 0, smaller weights above 0 --------------------------------

@pytest.mark.parametrize("bias", [False, True])
def test_ridge_w_update(bk64, rng, bias):
    Y, Z = rng.standard_normal((5, 300)), rng.random((20, 300))
    plain = update_w(bk64, Y, Z, 1e-14, "chol", bias)
    assert np.array_equal(update_w(bk64, Y, Z, 1e-14, "chol", bias, alpha=0.0), plain)
    assert rel(update_w(bk64, Y, Z, 1e-14, "chol", bias, alpha=1e-10), plain) < 1e-8
    norms = [np.linalg.norm(update_w(bk64, Y, Z, 1e-14, "chol", bias, alpha=a)[:, :20]) for a in (0.0, 0.01, 1.0)]
    assert norms[0] > norms[1] > norms[2]
    if bias:  # the ones row is a constraint: a huge ridge leaves the bias as the mean of Y
        W = update_w(bk64, Y, Z, 1e-14, "chol", bias, alpha=1e7)
        np.testing.assert_allclose(W[:, -1], Y.mean(axis=1), atol=1e-6)
        assert np.abs(W[:, :-1]).max() < 1e-6 * np.abs(plain[:, :-1]).max() * 10


def test_ridge_right_pinv_is_the_filtered_least_squares(bk64, rng):
    """``R A^T (A A^T + a I)^-1`` equals the follow-up's filter ``W U diag(s^2/(s^2+a)) U^T`` of the
    least-squares ``W = R A^+`` (``A = U S V^T``), with ``a = alpha ||A||_F^2 / p`` (relative)."""
    A, R = rng.random((15, 200)), rng.standard_normal((4, 200))
    U, s, _ = np.linalg.svd(A, full_matrices=False)
    W = R @ np.linalg.pinv(A)
    for alpha in (1e-3, 0.1):
        a = alpha * np.sum(A * A) / A.shape[0]
        np.testing.assert_allclose(ridge_right_pinv(bk64, A, 1e-14, alpha).apply(R),
                                   W @ U @ np.diag(s ** 2 / (s ** 2 + a)) @ U.T, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("bias", [False, True])
def test_ridge_batch_input_pinv(bk64, rng, bias):
    X = rng.random((30, 6)) @ rng.random((6, 500))
    svd = input_svd(bk64, X, 1e-3, bias)
    J = np.arange(0, 500, 3)
    R = rng.standard_normal((8, J.size))
    plain = batch_input_pinv(bk64, svd, J, "chol").apply(R)
    assert rel(ridge_batch_input_pinv(bk64, svd, J, 1e-10, bias).apply(R), plain) < 1e-7
    XJ = np.vstack([X[:, J], np.ones((1, J.size))]) if bias else X[:, J]
    D = np.eye(XJ.shape[0])
    if bias:
        D[-1, -1] = 0
    a = 0.05 * np.sum(X[:, J] ** 2) / X.shape[0]  # relative to the mean squared row norm of X_J
    direct = R @ XJ.T @ np.linalg.inv(XJ @ XJ.T + a * D)  # the ridge solution, formed directly
    np.testing.assert_allclose(ridge_batch_input_pinv(bk64, svd, J, 0.05, bias).apply(R), direct, rtol=1e-6, atol=1e-8)
    assert np.linalg.norm(direct) < np.linalg.norm(plain)


def test_ridge_left_pinv_for_algorithm_3(bk64, rng):
    for shape in ((10, 30), (30, 10)):
        A, R = rng.standard_normal(shape), rng.standard_normal((shape[0], 50))
        np.testing.assert_allclose(ridge_left_pinv(bk64, A, 1e-12), left_pinv(bk64, A, 1e-14, "chol"), rtol=1e-6,
                                   atol=1e-8)
        lam = 0.1 * np.sum(A * A) / min(shape)
        np.testing.assert_allclose(ridge_left_pinv(bk64, A, 0.1), np.linalg.solve(A.T @ A + lam * np.eye(shape[1]), A.T),
                                   rtol=1e-8, atol=1e-10)
        assert np.linalg.norm(ridge_left_pinv(bk64, A, 0.1) @ R) < np.linalg.norm(np.linalg.pinv(A) @ R)


def test_semi_nmf_beta_damps_the_z_update(bk64, rng):
    Y, W, Z = rng.standard_normal((4, 100)), rng.standard_normal((4, 30)), rng.random((30, 100))
    plain = update_z(bk64, Y, W, Z.copy())
    assert np.array_equal(update_z(bk64, Y, W, Z.copy(), beta=0.0), plain)
    moves = [np.linalg.norm(update_z(bk64, Y, W, Z.copy(), beta=b) - Z) for b in (0.0, 1.0, 100.0)]
    assert moves[0] > moves[1] > moves[2]  # beta pulls the multiplicative ratio towards 1
    assert (update_z(bk64, Y, W, Z.copy(), beta=1.0) >= 0).all()


# -- the safeguard -------------------------------------------------------------------------------

def test_safeguard_never_raises_the_residual(bk64):
    """A target f(X A) cannot reach (noise) and omega = 1.5: plain Algorithm 2's residual grows again
    after a few steps (measured: 534.6 133.2 57.8 41.8 39.9 40.1 40.2); the safeguarded one only ever
    accepts steps that lower it. The same contract for Algorithm 3."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((20, 400))
    rng.standard_normal((10, 20))
    B = np.maximum(rng.standard_normal((10, 400)), 0)
    X0 = 3 * rng.standard_normal((10, 20))
    P = right_pinv(bk64, A, 1e-14, "chol")
    res = lambda X: np.linalg.norm(B - np.maximum(X @ A, 0))  # noqa: E731
    plain, safe = [res(X0)], [res(X0)]
    Xp, Xs = X0, X0
    for _ in range(6):
        Xp = alg2_right(bk64, B, A, P, Xp, 1, 1.5)
        Xs = alg2_right_safe(bk64, B, A, P, Xs, 1, 1.5)
        plain.append(res(Xp))
        safe.append(res(Xs))
    assert any(b > a for a, b in zip(plain, plain[1:]))
    assert all(b <= a for a, b in zip(safe, safe[1:])) and safe[-1] < safe[0]
    rng = np.random.default_rng(1)
    W = rng.standard_normal((30, 15))
    Ztrue = np.maximum(rng.standard_normal((15, 300)), 0)
    Bz = np.maximum(W @ Ztrue, 0)
    Z0 = np.maximum(Ztrue + rng.standard_normal(Ztrue.shape), 0)
    Wp = left_pinv(bk64, W, 1e-14, "chol")
    resz = lambda Z: np.linalg.norm(Bz - np.maximum(W @ Z, 0))  # noqa: E731
    Z, seq = Z0, [resz(Z0)]
    for _ in range(6):
        Z = alg3_left_safe(bk64, Bz, W, Wp, Z, 1, 1.5)
        seq.append(resz(Z))
        assert (Z >= 0).all()
    assert all(b <= a for a, b in zip(seq, seq[1:]))
    assert np.array_equal(alg3_left_safe(bk64, Bz, W, Wp, Z0, 0, 1.0), Z0)
    assert alg3_left is not alg3_left_safe


# -- through a run -------------------------------------------------------------------------------

def test_regularisation_off_is_the_paper_bit_for_bit(small_nmf):
    """Explicit off values give the defaults' weights bit for bit, and a small alpha does not (the
    comparison can fail)."""
    cfg = compose_train(small_nmf)
    data = load_dataset(cfg.dataset)
    explicit = compose_train(small_nmf + ["solver.alpha=0", "solver.beta=0", "solver.lam=0", "solver.safeguard=false",
                                          "solver.layer_omega=null"])
    ridge = compose_train(small_nmf + ["solver.alpha=1e-3"])
    a, b, c = (fit(x, data).weights for x in (cfg, explicit, ridge))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, z) for x, z in zip(a, c))


def test_regularised_run_and_layer_omega(small_nmf):
    cfg = compose_train(small_nmf + ["solver.alpha=0.01", "solver.beta=1e-4", "solver.lam=0.01", "solver.safeguard=true",
                                     "solver.layer_omega=[0.9,0.7]", "solver.bias=true"])
    r = fit(cfg, load_dataset(cfg.dataset))
    assert r.history[-1]["objective"] < r.history[0]["objective"] and all(np.isfinite(W).all() for W in r.weights)
    plain = fit(compose_train(small_nmf + ["solver.bias=true"]), load_dataset(cfg.dataset))
    assert np.linalg.norm(r.weights[-1]) < np.linalg.norm(plain.weights[-1])  # ridge keeps W_d smaller
    with pytest.raises(NmfdnnError, match="layer_omega must list one omega"):
        from nmfdnn.config import validate

        validate(compose_train(small_nmf + ["solver.layer_omega=[0.9]"]))
    assert OmegaConf.structured(NMFSolverConfig()).alpha == 0.0


# -- the validation split ------------------------------------------------------------------------

def test_validation_samples_never_reach_training(small_nmf):
    """The held-out samples are exactly val_size of the training set, disjoint from the samples that
    training sees (the trainer's X), fixed by val_seed, and their error is reported every epoch."""
    cfg = compose_train(small_nmf + ["dataset.val_size=300", "dataset.val_seed=7"])
    data = load_dataset(cfg.dataset)
    full = load_dataset(compose_train(small_nmf).dataset)
    assert data.val.m == 300 and data.train.m == full.train.m - 300
    cols = {c.tobytes() for c in full.train.X.T}
    val = {c.tobytes() for c in data.val.X.T}
    train = {c.tobytes() for c in data.train.X.T}
    assert val <= cols and train <= cols and not (val & train)
    again = load_dataset(cfg.dataset)
    assert np.array_equal(again.val.X, data.val.X)
    other = load_dataset(compose_train(small_nmf + ["dataset.val_size=300", "dataset.val_seed=8"]).dataset)
    assert not np.array_equal(other.val.X, data.val.X)
    r = fit(cfg, data)
    assert all("val_error" in row for row in r.history)
    assert all(0.0 <= row["val_error"] <= 100.0 for row in r.history)
    assert r.history[-1]["val_error"] < 90.0  # learnt something on the held-out samples (chance: 90 %)


def test_validation_in_metrics_history_and_report(tmp_path, tiny_run):
    from nmfdnn.tools.report import report
    from nmfdnn.train import run

    run(compose_train(tiny_run + ["dataset.val_size=100"]), tmp_path / "a")
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["n_val"] == 100 and m["n_train"] == 500 and "val_error" in m
    assert (tmp_path / "a" / "history.csv").read_text().splitlines()[0].endswith(",val_error")
    (row,) = report([str(tmp_path)])
    assert row["val_error"] == m["val_error"] and "val error %" in (tmp_path / "report.md").read_text()
    with pytest.raises(NmfdnnError, match="val_size=600 must be between 1 and 599"):
        load_dataset(compose_train(tiny_run + ["dataset.val_size=600"]).dataset)


def test_factor_dtype_null_means_the_working_dtype_for_resume_and_report(tmp_path, tiny_run):
    from nmfdnn.tools.report import report
    from nmfdnn.train import run

    run(compose_train(tiny_run), tmp_path / "a")  # factor_dtype: null, dtype float64
    assert run(compose_train(tiny_run + ["solver.factor_dtype=float64", "resume=true"]), tmp_path / "a")["status"] \
        == "finished"  # the same computation: accepted as already finished
    with pytest.raises(NmfdnnError, match="another config"):
        run(compose_train(tiny_run + ["solver.factor_dtype=float32", "resume=true"]), tmp_path / "a")
    run(compose_train(tiny_run + ["solver.factor_dtype=float64", "seed=1"]), tmp_path / "b")
    (row,) = report([str(tmp_path)])
    assert row["n"] == 2
