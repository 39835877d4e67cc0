"""Wide filter banks from Algorithm 5 on whitened patches (nmfdnn/method/filterbank.py) against a naive
transcription: the patches drawn are columns of the explicit patch matrix, the centring and ZCA map
written out with numpy, the split target nonnegative and exact (T_+ - T_- = the whitened patches)."""

import numpy as np
import pytest

from nmfdnn.backend import get_backend
from nmfdnn.method import conv, filterbank
from nmfdnn.method.conv import ConvSpec

from util import cli, one_line_error


@pytest.fixture
def bk():
    return get_backend("numpy", "float64")


def test_sampled_patches_are_columns_of_the_patch_matrix(bk, monkeypatch):
    spec = ConvSpec(2, 7, 7, 3, 3, padding=1)
    Z = np.random.default_rng(0).random((spec.n_in, 9))
    full = conv.im2col(bk, Z, spec)
    monkeypatch.setattr(conv, "CHUNK_ENTRIES", spec.patch * spec.oh * spec.ow * 2)  # pieces of 2 samples
    P = filterbank.sample_patches(bk, Z, spec, 40, np.random.default_rng(1))
    assert P.shape == (spec.patch, 40)
    want = full[:, np.sort(np.random.default_rng(1).choice(full.shape[1], size=40, replace=False))]
    assert np.array_equal(P, want)
    assert filterbank.sample_patches(bk, Z, spec, 10 ** 6, np.random.default_rng(2)).shape == full.shape


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_whitening_is_centring_then_zca_then_the_split(bk, eps):
    rng = np.random.default_rng(3)
    P = rng.random((12, 500)) @ np.diag(rng.random(500))  # correlated, nonnegative patches
    P = rng.random((12, 12)) @ P
    M, T = filterbank.whitening(bk, P, eps)
    Pc = P - P.mean(axis=0, keepdims=True)  # each patch minus its own mean
    S = Pc @ Pc.T / P.shape[1]
    lam, Q = np.linalg.eigh(S)
    lam = np.maximum(lam, 0)
    d = lam + eps * lam.mean()
    inv = np.array([1 / np.sqrt(v) if v > 1e-9 * d.max() else 0.0 for v in d])  # the null direction e stays 0
    Pw = Q @ np.diag(inv) @ Q.T @ Pc
    assert np.allclose(M @ P, Pw)
    assert T.shape == (24, 500) and (T >= 0).all()
    assert np.allclose(T[:12] - T[12:], Pw)
    if eps == 0:  # white: the covariance is the projector onto the centred patches' span (rank p - 1)
        C = Pw @ Pw.T / P.shape[1]
        assert np.allclose(C @ C, C, atol=1e-8) and round(np.trace(C)) == 11


IMAGES = ["dataset=synthetic", "dataset.image=[1,10,10]", "dataset.n_train=900",
          "dataset.n_test=300", "progress=false", "solver.batch_size=300", "solver.ae_samples=300", "epochs=1"]


def test_a_wide_bank_pooled_into_quadrants_trains(tmp_path):
    d = tmp_path / "wide"
    code, _, err = cli(["train", *IMAGES, "conv=[{channels:64,kernel:3,pool:4}]", "hidden=[20]",
                        "solver.ae_whiten=0.1", "solver.ae_patches=3000", "solver.memory=0.9", f"hydra.run.dir={d}"])
    assert code == 0, err
    with np.load(d / "model.npz") as z:
        assert z["W1"].shape == (64, 9) and np.isfinite(z["W1"]).all()
        assert z["W2"].shape == (20, 64 * 2 * 2)  # quadrants: 8 x 8 outputs pooled by 4
    # 384 conv features and 300-sample batches: refused without memory, trained with it
    wider = ["conv=[{channels:96,kernel:3,pool:4}]", "hidden=[20]", "solver.ae_whiten=0.1", "solver.ae_patches=3000"]
    code, _, err = cli(["train", *IMAGES, *wider, f"hydra.run.dir={tmp_path / 'no-memory'}"])
    one_line_error(code, err, "must exceed the widest hidden layer")
    code, _, err = cli(["train", *IMAGES, *wider, "solver.memory=0.9", f"hydra.run.dir={tmp_path / 'memory'}"])
    assert code == 0, err


@pytest.mark.parametrize("override,needle", [
    ("solver.ae_whiten=-1", "solver.ae_whiten must be a finite number >= 0"),
    ("solver.ae_whiten=inf", "solver.ae_whiten must be a finite number >= 0"),
    ("solver.ae_patches=0", "solver.ae_patches must be an integer in [1, 10^7]"),
    ("solver.ae_patches=100000000", "solver.ae_patches must be an integer in [1, 10^7]"),
])
def test_bad_values_are_one_line(tmp_path, override, needle):
    code, _, err = cli(["train", *IMAGES, "conv=[{channels:4,kernel:3,pool:2}]", "hidden=[20]", override,
                        f"hydra.run.dir={tmp_path / 'r'}"])
    one_line_error(code, err, needle)


def test_whitening_without_conv_layers_is_refused(tmp_path):
    code, _, err = cli(["train", "dataset=synthetic", "hidden=[20]", "solver.ae_whiten=0.1",
                        f"hydra.run.dir={tmp_path / 'r'}"])
    one_line_error(code, err, "acts on conv layers only")
