"""Reference tests of the Gauss-Newton filter step (nmfdnn/method/filters.py) against a naive dense
transcription on tiny images: the convolution's explicit Toeplitz matrix (:func:`conv.dense_matrix`,
loops over the definition), the explicit Jacobian of the layer above's output with respect to every
filter entry, built column by column, and ``numpy.linalg.solve`` of the damped normal equations."""

import numpy as np
import pytest

from nmfdnn.backend import get_backend
from nmfdnn.method import filters
from nmfdnn.method.activations import RELU, LeakyReLU, Softplus
from nmfdnn.method.conv import ConvSpec
from nmfdnn.method.activations import LINEAR
from nmfdnn.method.layers import Conv, Dense
from nmfdnn.method.network import Network

ACTS = {"relu": RELU, "leaky": LeakyReLU(0.1), "softplus": Softplus(2.0)}
SPECS = {"pad-pool": ConvSpec(2, 6, 6, 3, 3, padding=1, pool=2), "stride": ConvSpec(1, 7, 7, 2, 3, stride=2)}


@pytest.fixture
def bk():
    return get_backend("numpy", "float64")


def naive_pre(W, X, spec, bias):
    """``U_j = L(W_0) X + b``: the explicit Toeplitz matrix times the samples, plus the bias per channel."""
    W0 = W[:, :-1] if bias else W
    U = filters_dense(W0, spec) @ X
    if bias:
        U += np.repeat(W[:, -1], spec.positions)[:, None]
    return U


def filters_dense(W0, spec):
    from nmfdnn.method.conv import dense_matrix

    return dense_matrix(get_backend("numpy", "float64"), W0, spec)


def naive_jacobian(W, V, X, spec, bias, act, above_conv=None):
    """The Jacobian of ``U_{j+1}``'s activation output, ``d vec(Z_{j+1}) / d vec(W)``, with the masks of
    the linearisation: ``D_{j+1} o L_{j+1}(D_j o dU_j)``, one column per filter entry (unit weights)."""
    U = naive_pre(W, X, spec, bias)
    Zj = act.apply(get_backend("numpy", "float64"), U.copy())
    V0 = V[:, :-1] if bias else V
    Lup = V0 if above_conv is None else filters_dense(V0, above_conv)
    Uup = Lup @ Zj + (0 if not bias else (V[:, -1:] if above_conv is None else
                                          np.repeat(V[:, -1], above_conv.positions)[:, None]))
    bk = get_backend("numpy", "float64")
    Zup = act.apply(bk, Uup.copy())
    Dj, Dup = act.derivative(bk, Zj), act.derivative(bk, Zup)
    cols = []
    for e in range(W.size):
        E = np.zeros(W.size)
        E[e] = 1.0
        E = E.reshape(W.shape)
        dU = naive_pre(E, X, spec, bias)  # linear in W: the derivative along E
        cols.append((Dup * (Lup @ (Dj * dU))).reshape(-1))
    return np.stack(cols, axis=1), Zj, Zup


def _net(spec, bias, act, seed=0, m=5, above_conv=None, n_up=7):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((spec.channels, spec.patch + int(bias))) * 0.5
    X = rng.random((spec.n_in, m))
    layer = Conv(spec, act, bias)
    if above_conv is None:
        above = Dense(spec.n_out, n_up, act, bias)
        V = rng.standard_normal((n_up, spec.n_out + int(bias))) * 0.3
    else:
        above = Conv(above_conv, act, bias)
        V = rng.standard_normal((above_conv.channels, above_conv.patch + int(bias))) * 0.3
    return W, X, layer, above, V, rng


CASES = [(s, a, b) for s in SPECS for a in ACTS for b in (False, True)]


@pytest.mark.parametrize("spec_name,act_name,bias", CASES)
def test_the_jacobian_and_its_adjoint_equal_the_explicit_matrix(bk, spec_name, act_name, bias):
    spec, act = SPECS[spec_name], ACTS[act_name]
    W, X, layer, above, V, rng = _net(spec, bias, act)
    J, Zj, Zup = naive_jacobian(W, V, X, spec, bias, act)
    assert np.allclose(layer.forward(bk, W, X), Zj, atol=1e-12)
    assert np.allclose(above.forward(bk, V, Zj), Zup, atol=1e-12)
    A = layer.design(bk, X)
    V0 = V[:, :-1] if bias else V
    Dj, Dup = act.derivative(bk, Zj), act.derivative(bk, Zup)
    dW = rng.standard_normal(W.shape)
    got = filters.jacobian(bk, layer, above, V0, A, Dj, Dup, dW)
    assert np.abs(got.reshape(-1) - J @ dW.reshape(-1)).max() <= 1e-10 * max(1.0, np.abs(J).max())
    S = rng.standard_normal(Zup.shape)
    back = filters.jacobian_adjoint(bk, layer, above, V0, A, Dj, Dup, S)
    assert np.abs(back.reshape(-1) - J.T @ S.reshape(-1)).max() <= 1e-10 * max(1.0, np.abs(J).max())


@pytest.mark.parametrize("act_name", ["leaky", "softplus"])
def test_the_jacobian_is_the_derivative_of_the_layer_above(bk, act_name):
    """Finite differences of the exact two-layer map: the linearisation is the first-order change."""
    spec, act = SPECS["pad-pool"], ACTS[act_name]
    W, X, layer, above, V, rng = _net(spec, True, act, seed=3)
    J, _, Zup = naive_jacobian(W, V, X, spec, True, act)
    dW = rng.standard_normal(W.shape)
    h = 1e-6
    moved = above.forward(bk, V, layer.forward(bk, W + h * dW, X))
    assert np.allclose((moved - Zup).reshape(-1) / h, J @ dW.reshape(-1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("spec_name,act_name,bias", CASES)
def test_the_step_solves_the_damped_normal_equations(bk, spec_name, act_name, bias):
    spec, act = SPECS[spec_name], ACTS[act_name]
    W, X, layer, above, V, rng = _net(spec, bias, act, seed=1)
    J, Zj, Zup = naive_jacobian(W, V, X, spec, bias, act)
    B = Zup + rng.standard_normal(Zup.shape) * 0.1
    rho = 1e-2
    rho_abs = rho * np.sum((J @ W.reshape(-1)) ** 2) / np.sum(W * W)
    n = W.size
    want = np.linalg.solve(J.T @ J + rho_abs * np.eye(n), J.T @ (B - Zup).reshape(-1))
    A = layer.design(bk, X)
    dW, r0 = filters.gauss_newton_step(bk, layer, above, W, V, A, Zj, Zup, B, rho, iters=4 * n)
    assert np.isclose(r0, np.sum((B - Zup) ** 2))
    assert np.abs(dW.reshape(-1) - want).max() <= 1e-8 * max(1.0, np.abs(want).max())


def test_the_step_through_a_conv_layer_above(bk):
    """The layer above may be a convolution itself (a second conv layer): its Toeplitz matrix."""
    spec, act = ConvSpec(1, 8, 8, 2, 3), ACTS["leaky"]
    up = ConvSpec(2, 6, 6, 3, 3, pool=2)
    W, X, layer, above, V, rng = _net(spec, True, act, seed=2, above_conv=up)
    J, Zj, Zup = naive_jacobian(W, V, X, spec, True, act, above_conv=up)
    assert np.allclose(above.forward(bk, V, Zj), Zup, atol=1e-12)
    B = Zup + rng.standard_normal(Zup.shape) * 0.1
    rho_abs = 1e-3 * np.sum((J @ W.reshape(-1)) ** 2) / np.sum(W * W)
    want = np.linalg.solve(J.T @ J + rho_abs * np.eye(W.size), J.T @ (B - Zup).reshape(-1))
    dW, _ = filters.gauss_newton_step(bk, layer, above, W, V, layer.design(bk, X), Zj, Zup, B, 1e-3,
                                      iters=4 * W.size)
    assert np.abs(dW.reshape(-1) - want).max() <= 1e-8 * max(1.0, np.abs(want).max())


def test_filter_step_reports_the_exact_share_it_removed(bk):
    spec, act = SPECS["pad-pool"], ACTS["relu"]
    W, X, layer, above, V, rng = _net(spec, True, act, seed=4, m=8)
    Zj = layer.forward(bk, W, X)
    Zup = above.forward(bk, V, Zj)
    B = Zup + rng.standard_normal(Zup.shape) * 0.05
    res = filters.filter_step(bk, layer, above, W, V, X, Zj, Zup, B, 1e-3, 30, 0.5)
    dW, _ = filters.gauss_newton_step(bk, layer, above, W, V, layer.design(bk, X), Zj, Zup, B, 1e-3, 30)
    assert np.allclose(res.W, W + 0.5 * dW)
    after = B - above.forward(bk, V, layer.forward(bk, res.W, X))
    assert np.isclose(res.share, 1 - np.sum(after ** 2) / np.sum((B - Zup) ** 2))
    assert np.isclose(res.ratio, 0.5 * np.linalg.norm(dW) / np.linalg.norm(W))
    assert res.share > 0  # a small damped step along the linearisation lowers the exact residual
    share, ratio = filters.filter_step_share(bk, layer, above, W, res.W, V, X, Zup, B)
    assert np.isclose(share, res.share) and np.isclose(ratio, res.ratio)


def test_an_injected_bug_fails_the_reference(bk):
    """A Jacobian without the layer above's mask D_{j+1} no longer matches the transcription."""
    spec, act = SPECS["pad-pool"], ACTS["relu"]
    W, X, layer, above, V, rng = _net(spec, False, act, seed=5)
    J, Zj, Zup = naive_jacobian(W, V, X, spec, False, act)
    A = layer.design(bk, X)
    dW = rng.standard_normal(W.shape)
    wrong = filters.jacobian(bk, layer, above, V, A, act.derivative(bk, Zj), np.ones_like(Zup), dW)
    assert np.abs(wrong.reshape(-1) - J @ dW.reshape(-1)).max() > 1e-3


@pytest.mark.parametrize("bias", [False, True])
def test_the_output_target_step_through_every_layer_above(bk, bias):
    """``filter_target=output``: the Jacobian of ``W_d f(V f(conv(W, X)))`` in the filters, written out
    column by column, and the step against the dense damped normal equations."""
    spec, act = SPECS["pad-pool"], ACTS["leaky"]
    W, X, layer, above, V, rng = _net(spec, bias, act, seed=6, m=6)
    Wd = rng.standard_normal((3, 7 + int(bias)))
    J1, Zj, Zup = naive_jacobian(W, V, X, spec, bias, act)  # rows: the entries of Z_{j+1}
    Wd0 = Wd[:, :-1] if bias else Wd
    J = np.stack([(Wd0 @ J1[:, e].reshape(Zup.shape)).reshape(-1) for e in range(W.size)], axis=1)
    out = Wd0 @ Zup + (Wd[:, -1:] if bias else 0)
    Y = out + rng.standard_normal(out.shape)
    rho_abs = 1e-3 * np.sum((J @ W.reshape(-1)) ** 2) / np.sum(W * W)
    want = np.linalg.solve(J.T @ J + rho_abs * np.eye(W.size), J.T @ (Y - out).reshape(-1))
    net = Network((layer, above, Dense(7, 3, LINEAR, bias)))
    res = filters.output_filter_step(bk, net, [W, V, Wd], 0, [X, Zj, Zup], Y, 1e-3, 4 * W.size, 1.0)
    assert np.abs((res.W - W).reshape(-1) - want).max() <= 1e-8 * max(1.0, np.abs(want).max())
    moved = Wd0 @ above.forward(bk, V, layer.forward(bk, res.W, X)) + (Wd[:, -1:] if bias else 0)
    assert np.isclose(res.share, 1 - np.sum((Y - moved) ** 2) / np.sum((Y - out) ** 2))
