"""Reference tests of the convolutional layer (nmfdnn/method/conv.py) against naive dense
transcriptions on tiny images: the layer's explicit (Toeplitz) matrix built by loops from the
definition of a strided, padded convolution with average pooling, ``numpy.linalg.pinv`` and
``numpy.linalg.lstsq``. An injected bug (a transposed kernel, a wrong stride) makes them fail."""

import numpy as np
import pytest

from nmfdnn.backend import get_backend
from nmfdnn.method import conv
from nmfdnn.method.conv import ConvSpec
from nmfdnn.method.linalg import right_pinv

SPECS = [ConvSpec(1, 5, 5, 2, 3), ConvSpec(2, 6, 5, 3, 3, stride=2, padding=1),
         ConvSpec(2, 6, 6, 2, 2, pool=2), ConvSpec(3, 7, 7, 2, 3, stride=1, padding=1, pool=2),
         ConvSpec(1, 4, 4, 3, 4)]
IDS = ["plain", "stride-pad", "pool", "pad-pool", "full-kernel"]


@pytest.fixture
def bk():
    return get_backend("numpy", "float64")


def _data(spec, m=4, seed=0, bias=False):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((spec.channels, spec.patch + int(bias)))
    Z = rng.random((spec.n_in, m))
    return W, Z


def naive_patches(Z, spec):
    """The pooled patch matrix by loops: for each sample and pooled position, the average of the padded
    patches of the output positions in its window."""
    m = Z.shape[1]
    k, s, p, q = spec.kernel, spec.stride, spec.padding, spec.pool
    img = np.pad(Z.T.reshape(m, spec.c, spec.h, spec.w), ((0, 0), (0, 0), (p, p), (p, p)))
    A = np.zeros((spec.patch, m * spec.positions))
    for j in range(m):
        for py in range(spec.ph):
            for px in range(spec.pw):
                col = j * spec.positions + py * spec.pw + px
                for dy in range(q):
                    for dx in range(q):
                        y, x = (py * q + dy) * s, (px * q + dx) * s
                        A[:, col] += img[j, :, y:y + k, x:x + k].reshape(-1) / (q * q)
    return A


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_im2col_and_col2im_are_adjoint(bk, spec):
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((spec.n_in, 3))
    P = rng.standard_normal((spec.patch, 3 * spec.oh * spec.ow))
    lhs = np.sum(conv.im2col(bk, Z, spec) * P)
    rhs = np.sum(Z * conv.col2im(bk, P, spec, 3))
    assert abs(lhs - rhs) <= 1e-10 * max(1.0, abs(lhs))
    G = rng.standard_normal((spec.patch, 3 * spec.positions))
    assert np.isclose(np.sum(conv.pooled_patches(bk, Z, spec) * G), np.sum(Z * conv.pooled_patches_adjoint(bk, G, spec, 3)))


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_forward_equals_the_explicit_matrix(bk, spec, bias):
    W, Z = _data(spec, bias=bias)
    L = conv.dense_matrix(bk, W[:, :spec.patch], spec)
    U = L @ Z + (np.repeat(W[:, -1], spec.positions)[:, None] if bias else 0.0)
    np.testing.assert_allclose(conv.preactivation(bk, W, Z, spec, bias), U, rtol=0, atol=1e-10)
    np.testing.assert_allclose(conv.forward(bk, W, Z, spec, bias), np.maximum(U, 0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(conv.pooled_patches(bk, Z, spec), naive_patches(Z, spec), rtol=0, atol=1e-12)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_one_algorithm3_step_equals_the_dense_one(bk, spec):
    """Line 4 of Algorithm 3 through the convolution: ``f(Z + L^+ R)`` with L the explicit matrix and
    ``numpy.linalg.pinv`` (the minimum-norm least-squares step), to 1e-10."""
    W, Z = _data(spec, seed=2)
    L = conv.dense_matrix(bk, W, spec)
    B = np.maximum(L @ np.random.default_rng(3).random(Z.shape), 0)
    R = B - np.maximum(L @ Z, 0)
    expected = np.maximum(Z + np.linalg.pinv(L, rcond=1e-13) @ R, 0)
    got = conv.conv_z_step(bk, B, W, Z, spec, iters=1, omega=1.0, bias=False, cg_iters=500, cg_tol=1e-15)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_the_w_step_is_the_dense_least_squares_solution(bk, spec):
    """With a linear f and omega = 1, one step of Algorithm 2 on the patch matrix solves
    ``min_W sum_j ||b_j - L(W) z_j||^2`` exactly; written densely as a least-squares problem in
    ``vec(W)`` (one column of the design matrix per weight, from the explicit Toeplitz matrices)."""
    _, Z = _data(spec, m=6, seed=4)
    B = np.random.default_rng(5).standard_normal((spec.n_out, Z.shape[1]))
    n_w = spec.channels * spec.patch
    design = np.zeros((spec.n_out * Z.shape[1], n_w))
    for t in range(n_w):
        E = np.zeros(n_w)
        E[t] = 1.0
        design[:, t] = (conv.dense_matrix(bk, E.reshape(spec.channels, spec.patch), spec) @ Z).reshape(-1)
    w, *_ = np.linalg.lstsq(design, B.reshape(-1), rcond=None)
    A = conv.patch_matrix(bk, Z, spec, bias=False)
    W = conv.to_patches(bk, B, spec) @ np.linalg.pinv(A)
    np.testing.assert_allclose(W.reshape(-1), w, rtol=0, atol=1e-10)
    # the method's own step: Algorithm 2 with the small Gram matrix's pseudo-inverse, ReLU residual
    W0 = np.random.default_rng(6).standard_normal((spec.channels, spec.patch))
    Bp = np.maximum(B, 0)
    got = conv.conv_w_step(bk, Bp, W0, Z, spec, right_pinv(bk, A, 1e-14, "svd"), iters=1, omega=1.0, bias=False)
    R = conv.to_patches(bk, Bp, spec) - np.maximum(W0 @ naive_patches(Z, spec), 0)
    np.testing.assert_allclose(got, W0 + R @ np.linalg.pinv(naive_patches(Z, spec)), rtol=0, atol=1e-10)


def _transposed_kernel(W, spec):
    return W.reshape(spec.channels, spec.c, spec.kernel, spec.kernel).transpose(0, 1, 3, 2).reshape(W.shape)


@pytest.mark.parametrize("bug", ["transposed kernel", "wrong stride"])
def test_an_injected_bug_fails_the_reference(bk, bug):
    spec = ConvSpec(2, 6, 5, 3, 3, stride=2, padding=1)
    W, Z = _data(spec)
    L = conv.dense_matrix(bk, W, spec)
    if bug == "transposed kernel":
        got = conv.preactivation(bk, _transposed_kernel(W, spec), Z, spec, False)
    else:
        wrong = ConvSpec(2, 6, 5, 3, 3, stride=1, padding=1)
        got = conv.preactivation(bk, W, Z, wrong, False)
    assert got.shape != (L @ Z).shape or not np.allclose(got, L @ Z, atol=1e-10)


def test_spec_problems_are_named():
    assert ConvSpec(1, 5, 5, 2, 7).problem().startswith("kernel 7 is larger")
    assert "stride" in ConvSpec(1, 5, 5, 2, 3, stride=0).problem()
    assert "padding" in ConvSpec(1, 5, 5, 2, 3, padding=-1).problem()
    assert "channels" in ConvSpec(1, 5, 5, 0, 3).problem()
    assert "pool 4 is larger" in ConvSpec(1, 5, 5, 2, 3, pool=4).problem()
    assert ConvSpec(3, 32, 32, 32, 5, padding=2, pool=2).problem() is None
    assert ConvSpec(3, 32, 32, 32, 5, padding=2, pool=2).n_out == 32 * 16 * 16


def test_pieces_of_samples_give_the_same_patches(bk, monkeypatch):
    """Large layers build their patch matrices in pieces of samples: the same numbers."""
    spec = ConvSpec(2, 8, 8, 3, 3, padding=1, pool=2)
    Z = np.random.default_rng(0).random((spec.n_in, 7))
    G = np.random.default_rng(1).random((spec.patch, 7 * spec.positions))
    whole = conv.pooled_patches(bk, Z, spec), conv.pooled_patches_adjoint(bk, G, spec, 7)
    monkeypatch.setattr(conv, "CHUNK_ENTRIES", spec.patch * spec.oh * spec.ow * 2)  # two samples a piece
    assert conv._samples_per_chunk(spec, 7) == 2
    np.testing.assert_array_equal(conv.pooled_patches(bk, Z, spec), whole[0])
    np.testing.assert_allclose(conv.pooled_patches_adjoint(bk, G, spec, 7), whole[1], rtol=0, atol=1e-12)
