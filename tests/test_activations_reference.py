"""Reference tests for the activations and the L1 penalties (issue 38): Algorithm 4 on one mini-batch, one
layer of Algorithm 5, semi-NMF and the backprop gradients with ``f`` in {relu, leaky_relu, capped_relu,
softplus} and ``solver.l1_weights`` / ``solver.l1_activations``, against a naive transcription written from
the derivations in :mod:`nmfdnn.method.activations` and :mod:`nmfdnn.method.sparse` (``numpy.linalg.pinv``,
every product recomputed). An injected change (ReLU's residual kept for another ``f``, the projection
dropped, the threshold forgotten) makes them fail: the last tests show the transcription notices."""

import dataclasses

import numpy as np
import pytest

from nmfdnn.config import NMFSolverConfig
from nmfdnn.method.activations import NAMES, named
from nmfdnn.method.autoencoder import pretrain_layer
from nmfdnn.method.finetune import finetune_batch
from nmfdnn.method.layers import dense
from nmfdnn.method.linalg import batch_input_pinv, input_svd
from nmfdnn.method.settings import NMFSettings

from test_reference import THRESHOLD, aug, naive_input_pinv, naive_nmf, neg, pos, problem, rel, split

A_SLOPE, A_CAP, A_BETA = 0.1, 0.8, 2.0  # parameters away from the defaults, so a dropped one shows


def f(name, U):
    """The four functions of the table in :mod:`nmfdnn.method.activations`, written out."""
    if name == "relu":
        return np.maximum(U, 0)
    if name == "leaky_relu":
        return np.where(U > 0, U, A_SLOPE * U)
    if name == "capped_relu":
        return np.minimum(np.maximum(U, 0), A_CAP)
    return np.log(1 + np.exp(A_BETA * U)) / A_BETA


def proj(name, Z):
    """The projection onto the closure of f's range."""
    if name == "leaky_relu":
        return Z
    if name == "capped_relu":
        return np.minimum(np.maximum(Z, 0), A_CAP)
    return np.maximum(Z, 0)


def soft(V, t):
    return np.sign(V) * np.maximum(np.abs(V) - t, 0)


def naive_semi_nmf(Y, W, Z, iters, bias, name, l1):
    """(4) with Z in f's range and ``l1 ||Z||_1``: Ding et al.'s update with ``+ l1`` in the denominator
    (clipped for capped_relu); for leaky_relu the least-squares step ``Z + W^+ (Y - W Z)``, soft-thresholded."""
    for _ in range(iters):
        W = Y @ np.linalg.pinv(aug(Z, bias))
        Wz, b = split(W, bias)
        if name == "leaky_relu":
            Z = soft(Z + np.linalg.pinv(Wz) @ (Y - b - Wz @ Z), l1)
            continue
        WtY, WtW = Wz.T @ (Y - b), Wz.T @ Wz
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = np.where(Z > 0, Z * np.sqrt((pos(WtY) + neg(WtW) @ Z) / (neg(WtY) + pos(WtW) @ Z + l1)), 0.0)
        Z = proj(name, Z)
    return W, Z


def naive_alg2(B, A, Apinv, X, iters, omega, name, l1, bias):
    """Algorithm 2 with f in line 3; with ``l1`` each step soft-thresholded (the bias column not)."""
    for _ in range(iters):
        X = X + omega * (B - f(name, X @ A)) @ Apinv
        if l1:
            X = np.hstack([soft(X[:, :-1], omega * l1), X[:, -1:]]) if bias else soft(X, omega * l1)
    return X


def naive_alg3(B, A, c, X, iters, omega, name, l1):
    """Algorithm 3 with f in line 3 and line 4 the projection of the (soft-thresholded) step."""
    Apinv = np.linalg.pinv(A)
    for _ in range(iters):
        X = proj(name, soft(X + omega * Apinv @ (B - f(name, A @ X + c)), omega * l1))
    return X


def naive_alg4_batch(Ws, XJ, YJ, Xpinv, S, L, omega, bias, name, l1w, l1z):
    Ws = [W.copy() for W in Ws]
    d = len(Ws)
    Z = [XJ]
    for W in Ws[:-1]:
        Z.append(f(name, W @ aug(Z[-1], bias)))
    Ws[d - 1], Zhat = naive_semi_nmf(YJ, Ws[d - 1], Z[d - 1], S, bias, name, l1z)
    for i in range(d - 1, 1, -1):
        A = aug(Z[i - 1], bias)
        Ws[i - 1] = naive_alg2(Zhat, A, np.linalg.pinv(A), Ws[i - 1], L, omega, name, l1w, bias)
        Wz, c = split(Ws[i - 1], bias)
        Zhat = naive_alg3(Zhat, Wz, c, Z[i - 1], L, omega, name, l1z)
    Ws[0] = naive_alg2(Zhat, aug(XJ, bias), Xpinv, Ws[0], L, omega, name, l1w, bias)
    return Ws


def act(name):
    return named(name, slope=A_SLOPE, cap=A_CAP, beta=A_BETA)


def settings(**kw):
    return NMFSettings.from_mapping(dataclasses.asdict(NMFSolverConfig(**kw)))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("l1", [(0.0, 0.0), (0.02, 0.0), (0.0, 0.05), (0.02, 0.05)],
                         ids=["no l1", "l1 weights", "l1 activations", "both"])
@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_finetune_batch_with_an_activation_and_l1_is_the_transcription(bk64, name, l1, bias):
    X, Y, Ws, J = problem([10, 8], bias)
    s = settings(bias=bias, lsq_iters=3, semi_nmf_iters=2, omega=0.7, l1_weights=l1[0], l1_activations=l1[1])
    xsvd = input_svd(bk64, X, THRESHOLD, bias)
    got = [W.copy() for W in Ws]
    net = dense(Ws, bias, act(name))
    finetune_batch(bk64, net, got, X[:, J], Y[:, J], batch_input_pinv(bk64, xsvd, J, s.input_pinv), s)
    ref = naive_alg4_batch(Ws, X[:, J], Y[:, J], naive_input_pinv(X, J, THRESHOLD, "chol", bias), 2, 3, 0.7, bias,
                           name, *l1)
    for i, (g, r) in enumerate(zip(got, ref)):
        assert rel(g, r) < 1e-7, f"W_{i + 1}"
        assert not np.allclose(r, Ws[i])
    if l1[0]:  # the penalty on the weights leaves exact zeros
        assert any((W[:, :-1] if bias else W).__eq__(0).any() for W in got[:-1])


@pytest.mark.parametrize("name", NAMES)
def test_pretrain_layer_with_an_activation_is_algorithm_5(bk64, name):
    """NMF (9) of the nonnegative part of the layer's input (leaky_relu's negative outputs dropped),
    Algorithm 2 for (10) and line 6 with the layer's f."""
    rng = np.random.default_rng(4)
    Zprev = rng.standard_normal((9, 120)) @ np.diag(rng.random(120))  # both signs, as a leaky layer's output
    if name != "leaky_relu":
        Zprev = np.abs(Zprev)
    Apinv = np.linalg.pinv(Zprev)
    s = settings(ae_iters=2, ae_nmf_iters=3, ae_lsq_iters=2, omega=0.9)
    W, Z = pretrain_layer(bk64, Zprev, _Pinv(Apinv), 5, s, np.random.default_rng(7), act=act(name))
    rng = np.random.default_rng(7)
    Wt, Zr = rng.random((9, 5)), rng.random((5, 120))
    Wr = np.zeros((5, 9))
    for _ in range(2):
        Wt, Zhat = naive_nmf(np.maximum(Zprev, 0), Wt, np.maximum(Zr, 0), 3)  # NMF of the nonnegative parts
        Wr = naive_alg2(Zhat, Zprev, Apinv, Wr, 2, 0.9, name, 0.0, False)
        Zr = f(name, Wr @ Zprev)
    assert rel(W, Wr) < 1e-8 and rel(Z, Zr) < 1e-8


class _Pinv:
    """``R -> R A^+`` from an explicit ``A^+`` (the interface of :mod:`nmfdnn.method.linalg`'s objects)."""

    low_rank = False

    def __init__(self, P):
        self.P = P

    def apply(self, R):
        return R @ self.P


@pytest.mark.parametrize("name", NAMES)
def test_each_activation_and_its_derivative(bk64, name):
    """f as written out, proj onto its range (idempotent, f's outputs fixed), f' through Z = f(U) equal
    to central differences of f."""
    a = act(name)
    U = np.random.default_rng(0).standard_normal((7, 50)) * 3
    Z = a.apply(bk64, U.copy())
    assert rel(Z, f(name, U)) < 1e-14
    assert np.array_equal(a.project(bk64, Z.copy()), Z)
    V = np.random.default_rng(1).standard_normal((7, 50)) * 3
    assert np.array_equal(a.project(bk64, a.project(bk64, V.copy())), a.project(bk64, V.copy()))
    h = 1e-6
    fd = (f(name, U + h) - f(name, U - h)) / (2 * h)
    assert np.allclose(np.asarray(a.derivative(bk64, Z), dtype=float), fd, atol=1e-6)
    assert a.nonnegative == (name != "leaky_relu")


@pytest.mark.parametrize("name", NAMES)
def test_backprop_gradients_with_each_activation_match_finite_differences(bk64, name):
    from nmfdnn.baselines.backprop import loss_and_grads

    rng = np.random.default_rng(2)
    X, Y = rng.random((6, 30)), np.eye(3)[:, rng.integers(0, 3, 30)]
    Ws = [rng.standard_normal((5, 7)) / 2, rng.standard_normal((4, 6)) / 2, rng.standard_normal((3, 5)) / 2]
    net = dense(Ws, True, act(name))
    _, grads = loss_and_grads(bk64, net, Ws, X, Y, "mse")
    h = 1e-6
    for i, W in enumerate(Ws):
        for idx in [(0, 0), (1, 2), (W.shape[0] - 1, W.shape[1] - 1)]:
            plus = [V.copy() for V in Ws]
            minus = [V.copy() for V in Ws]
            plus[i][idx] += h
            minus[i][idx] -= h
            fd = (loss_and_grads(bk64, net, plus, X, Y, "mse")[0]
                  - loss_and_grads(bk64, net, minus, X, Y, "mse")[0]) / (2 * h)
            assert abs(grads[i][idx] - fd) <= 1e-6 + 1e-5 * abs(fd), (i, idx)


def test_the_transcription_notices_a_changed_activation_step():
    """ReLU's line 3 kept for leaky_relu, the projection dropped for capped_relu, or the threshold
    forgotten: each moves the weights far beyond the tolerance above."""
    X, Y, Ws, J = problem([10, 8], False)
    Xp = naive_input_pinv(X, J, THRESHOLD, "chol", False)
    args = (Ws, X[:, J], Y[:, J], Xp, 2, 3, 0.7, False)
    leaky = naive_alg4_batch(*args, "leaky_relu", 0.0, 0.0)
    relu = naive_alg4_batch(*args, "relu", 0.0, 0.0)
    assert max(rel(a, b) for a, b in zip(leaky, relu)) > 1e-3
    l1 = naive_alg4_batch(*args, "relu", 0.02, 0.05)
    assert max(rel(a, b) for a, b in zip(l1, relu)) > 1e-3
    Zhat, W = np.abs(np.random.default_rng(0).standard_normal((8, 80))) * 2, Ws[1]
    capped = naive_alg3(Zhat, W, 0.0, np.abs(X[:10, J]), 3, 0.7, "capped_relu", 0.0)
    assert capped.max() <= A_CAP
    unprojected = np.abs(X[:10, J])
    for _ in range(3):
        unprojected = unprojected + 0.7 * np.linalg.pinv(W) @ (Zhat - f("capped_relu", W @ unprojected))
    assert rel(unprojected, capped) > 1e-3


@pytest.mark.parametrize("energy", [0.5, 0.9, 0.99, 1.0])
@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_the_input_energy_truncation_keeps_the_fewest_directions_holding_that_share(bk64, energy, bias):
    """``solver.input_energy``: the SVD of X written out, the fewest leading s_i with sum s_i^2 >= energy
    sum s_j^2; the kept subspace (projector U U^T) and singular values equal the package's."""
    from nmfdnn.method.linalg import input_svd

    rng = np.random.default_rng(5)
    X = rng.random((12, 9)) @ np.diag(2.0 ** -np.arange(9)) @ rng.random((9, 300))  # spread-out spectrum
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    s = s[s > 12 * np.finfo(float).eps * s[0]]
    k = int(np.argmax(np.cumsum(s ** 2) >= energy * (s ** 2).sum() * (1 - 1e-12))) + 1
    got = input_svd(bk64, X, 4e-2, bias, energy=energy)
    n = got.s.shape[0] - int(bias)
    assert n == k
    assert rel(got.s[:n], s[:k]) < 1e-10
    Ug = got.U[:12, :n]
    assert rel(Ug @ Ug.T, U[:, :k] @ U[:, :k].T) < 1e-8
