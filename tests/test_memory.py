"""Memory across mini-batches (nmfdnn/method/memory.py): with f the identity, omega = 1 and beta = 1,
one pass of Algorithm 2's step over K batches is the least-squares solution on all K batches' columns
(block recursive least squares), for a hidden layer, semi-NMF's W and the truncated input of W_1;
beta < 1 weighs the past geometrically; the off values give the paper's bits; a bad value is one line."""

import json

import numpy as np
import pytest

from nmfdnn.backend import get_backend
from nmfdnn.method.linalg import input_svd
from nmfdnn.method.memory import GramMemory
from nmfdnn.method.semi_nmf import update_w_memory

from util import cli, one_line_error


@pytest.fixture
def bk():
    return get_backend("numpy", "float64")


def _batches(rng, p=6, q=4, sizes=(15, 9, 20, 12)):
    return [(rng.standard_normal((q, m)), rng.standard_normal((p, m))) for m in sizes]


def test_one_pass_with_beta_one_is_least_squares_on_all_batches(bk):
    rng = np.random.default_rng(0)
    batches = _batches(rng)
    mem = GramMemory(1.0)
    W = rng.standard_normal((4, 6))  # any start: the first batch's full-rank Gram matrix forgets it
    for B, A in batches:
        W = W + mem.right_pinv(bk, A, "w2", 1e-14).apply(B - W @ A)  # Algorithm 2, line 4, f = identity
    A_all = np.concatenate([A for _, A in batches], axis=1)
    B_all = np.concatenate([B for B, _ in batches], axis=1)
    want = np.linalg.lstsq(A_all.T, B_all.T, rcond=None)[0].T
    assert np.abs(W - want).max() <= 1e-10 * np.abs(want).max()


def test_beta_weighs_the_past_geometrically(bk):
    """With beta < 1 the result is weighted least squares: batch k's columns weighted beta^(K-k)."""
    rng = np.random.default_rng(1)
    batches = _batches(rng)
    beta = 0.5
    mem = GramMemory(beta)
    W = np.zeros((4, 6))
    for B, A in batches:
        W = W + mem.right_pinv(bk, A, "w", 1e-14).apply(B - W @ A)
    K = len(batches)
    w = np.concatenate([np.full(A.shape[1], beta ** ((K - 1 - k) / 2)) for k, (_, A) in enumerate(batches)])
    A_all = np.concatenate([A for _, A in batches], axis=1) * w
    B_all = np.concatenate([B for B, _ in batches], axis=1) * w
    want = np.linalg.lstsq(A_all.T, B_all.T, rcond=None)[0].T
    assert np.abs(W - want).max() <= 1e-10 * np.abs(want).max()


def test_semi_nmf_w_update_with_memory_is_least_squares_over_batches(bk):
    rng = np.random.default_rng(2)
    mem = GramMemory(1.0)
    W = np.zeros((3, 6))  # the bias column included
    pairs = [(rng.standard_normal((3, m)), rng.random((5, m))) for m in (12, 20, 9)]
    for Y, Z in pairs:
        W = update_w_memory(bk, Y, W, Z, 1e-14, mem, bias=True)
    Z_all = np.concatenate([np.vstack([Z, np.ones((1, Z.shape[1]))]) for _, Z in pairs], axis=1)
    Y_all = np.concatenate([Y for Y, _ in pairs], axis=1)
    want = np.linalg.lstsq(Z_all.T, Y_all.T, rcond=None)[0].T
    assert np.abs(W - want).max() <= 1e-10 * np.abs(want).max()


def test_the_truncated_input_with_memory_is_least_squares_in_its_subspace(bk):
    """W_1's step with the input SVD X ~ U_1 S_1 V_1^T: with beta = 1, the minimum-norm least-squares
    fit of all batches' columns of the rank-r input (from W = 0)."""
    rng = np.random.default_rng(3)
    n, m, r = 8, 60, 5
    X = rng.standard_normal((n, r)) @ rng.standard_normal((r, m))  # rank r: the truncation is exact
    B = rng.standard_normal((4, m))
    svd = input_svd(bk, X, 1e-8)
    assert svd.rank == r
    mem = GramMemory(1.0)
    W = np.zeros((4, n))
    for J in np.array_split(rng.permutation(m), 3):
        J = np.sort(J)
        W = W + mem.input_pinv(bk, svd, J).apply(B[:, J] - W @ X[:, J])
    want = B @ np.linalg.pinv(X)
    assert np.abs(W - want).max() <= 1e-9 * np.abs(want).max()


def test_state_round_trips(bk):
    mem = GramMemory(0.9)
    A = np.random.default_rng(4).standard_normal((3, 10))
    mem.right_pinv(bk, A, "w2", 1e-14)
    again = GramMemory(0.9)
    again.load(bk, mem.state(bk))
    assert again.G.keys() == mem.G.keys() and np.array_equal(again.G["w2"], mem.G["w2"])


IMAGES = ["dataset=synthetic", "dataset.image=[1,8,8]", "dataset.n_train=900", "dataset.n_test=300",
          "progress=false", "solver.batch_size=300", "solver.ae_samples=300", "epochs=2"]
CONV = ["conv=[{channels:4,kernel:3,pool:2}]", "hidden=[12]"]
DENSE = ["dataset=synthetic", "dataset.n_train=900", "dataset.n_test=300", "progress=false", "solver.batch_size=300",
         "solver.ae_samples=300", "epochs=2", "hidden=[30,20]", "solver.bias=true"]


def _weights(d):
    with np.load(d / "model.npz") as z:
        return {k: z[k].copy() for k in z.files}


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_every_new_key_at_its_off_value_gives_the_same_bits(tmp_path, net):
    args = DENSE if net == "dense" else [*IMAGES, *CONV]
    code, _, err = cli(["train", *args, f"hydra.run.dir={tmp_path / 'plain'}"])
    assert code == 0, err
    off = ["solver.memory=0", "solver.filter_step=alg2", "solver.filter_rho=0.5", "solver.filter_cg_iters=3",
           "solver.filter_order=before", "solver.filter_target=output", "solver.ae_patches=77"]
    if net == "conv":
        off.append("solver.filter_trace=true")  # a trace measures, it never changes a step
    code, _, err = cli(["train", *args, *off, f"hydra.run.dir={tmp_path / 'off'}"])
    assert code == 0, err
    a, b = _weights(tmp_path / "plain"), _weights(tmp_path / "off")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_memory_and_the_gauss_newton_step_train_and_report_their_numbers(tmp_path):
    d = tmp_path / "gn"
    code, _, err = cli(["train", *IMAGES, *CONV, "solver.memory=0.9", "solver.filter_step=gauss_newton",
                        f"hydra.run.dir={d}"])
    assert code == 0, err
    m = json.loads((d / "metrics.json").read_text())
    f = m["info"]["filters"]["W_1"]
    assert f["step"] == "gauss_newton" and f["batches"] == 6 and len(f["share_removed"]) == 6
    assert f["median_step_ratio"] > 0
    plain = tmp_path / "plain"
    code, _, err = cli(["train", *IMAGES, *CONV, f"hydra.run.dir={plain}"])
    assert code == 0, err
    a, b = _weights(d), _weights(plain)
    assert not np.array_equal(a["W1"], b["W1"])  # the keys act


BAD = {"solver.memory=-0.1": "solver.memory must be in [0, 1]",
       "solver.memory=1.5": "solver.memory must be in [0, 1]",
       "solver.memory=nan": "solver.memory must be in [0, 1]",
       "solver.filter_step=newton": "solver.filter_step must be alg2 or gauss_newton",
       "solver.filter_cg_iters=0": "solver.filter_cg_iters must be an integer in [1, 1000]",
       "solver.filter_cg_iters=100000": "solver.filter_cg_iters must be an integer in [1, 1000]",
       "solver.filter_rho=-1": "solver.filter_rho must be a finite number >= 0",
       "solver.filter_rho=inf": "solver.filter_rho must be a finite number >= 0",
       "solver.filter_order=sideways": "solver.filter_order must be after or before",
       "solver.filter_target=input": "solver.filter_target must be above or output"}


def test_bad_values_are_one_line(tmp_path):
    for i, (override, needle) in enumerate(BAD.items()):
        d = tmp_path / f"r{i}"
        code, _, err = cli(["train", *IMAGES, *CONV, override, f"hydra.run.dir={d}"])
        one_line_error(code, err, needle)
        assert not d.exists(), override


def test_gauss_newton_without_conv_layers_is_refused(tmp_path):
    code, _, err = cli(["train", *DENSE, "solver.filter_step=gauss_newton", f"hydra.run.dir={tmp_path / 'r'}"])
    one_line_error(code, err, "acts on conv layers")


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["nmf_memory", "conv_gauss_newton"])
def test_sigkill_and_resume_keep_the_memory_and_give_the_same_bits(solver):
    """SIGKILL at random points, then resume: the running Gram matrices come back from the checkpoint
    (without them the resumed weights would differ), and so does the filter trace."""
    from nmfdnn.maint import kill_resume

    results = kill_resume.run_trials(solver, 2, seed=7)
    assert all(r["identical"] for r in results), results
    assert any(r["had_checkpoint"] for r in results), results
