"""Reference tests that guard the science: the shipped solvers against a short, naive transcription of
the paper (``numpy.linalg.pinv``, every product recomputed, no forward-pass reuse, no carried product,
no ``W^T (W Z)`` trick), on small random problems, for every pseudo-inverse route, with and without
bias, for one to three hidden layers.

The transcription below is written from the paper's text (Sec. 3 and 4, Algorithms 2-5, eq. 4 and 9),
not from the package: if Algorithm 4 in :mod:`nmfdnn.method` stops computing what the paper says
(two steps swapped, the step omega dropped, a layer skipped, the wrong target handed down), these fail.
"""

import dataclasses

import numpy as np
import pytest

from nmfdnn.config import InputPinv, NMFSolverConfig, Pinv
from nmfdnn.method.autoencoder import pretrain_layer
from nmfdnn.method.finetune import finetune_batch
from nmfdnn.method.layers import dense
from nmfdnn.method.linalg import batch_input_pinv, input_svd
from nmfdnn.method.network import evaluate, output
from nmfdnn.method.settings import NMFSettings
from nmfdnn.method.semi_nmf import semi_nmf

relu = lambda U: np.maximum(U, 0)  # noqa: E731  f of the paper
pos = lambda M: (np.abs(M) + M) / 2  # noqa: E731
neg = lambda M: (np.abs(M) - M) / 2  # noqa: E731


def aug(Z, bias):
    """``[Z; e^T]`` (a bias column in W acts on a row of ones), or Z."""
    return np.vstack([Z, np.ones((1, Z.shape[1]))]) if bias else Z


def split(W, bias):
    return (W[:, :-1], W[:, -1:]) if bias else (W, 0.0)


# -- the paper, transcribed -------------------------------------------------------------------------

def naive_semi_nmf(Y, W, Z, iters, bias):
    """Eq. (4) by Ding, Li and Jordan: ``W = Y Z^+``, then ``Z <- Z sqrt(([W^T Y]^+ + [W^T W]^- Z) /
    ([W^T Y]^- + [W^T W]^+ Z))`` (with a bias, ``Y - b e^T`` for ``Y``); a zero entry of Z stays zero
    (where the denominator may vanish too)."""
    for _ in range(iters):
        W = Y @ np.linalg.pinv(aug(Z, bias))
        Wz, b = split(W, bias)
        WtY, WtW = Wz.T @ (Y - b), Wz.T @ Wz
        with np.errstate(divide="ignore", invalid="ignore"):
            Z = np.where(Z > 0, Z * np.sqrt((pos(WtY) + neg(WtW) @ Z) / (neg(WtY) + pos(WtW) @ Z)), 0.0)
    return W, Z


def naive_alg2(B, A, Apinv, X, iters, omega):
    """Algorithm 2: ``R_s = B - f(X_s A)``, ``X_{s+1} = X_s + omega R_s A^+``."""
    for _ in range(iters):
        R = B - relu(X @ A)
        X = X + omega * R @ Apinv
    return X


def naive_alg3(B, A, c, X, iters, omega):
    """Algorithm 3: ``R_s = B - f(A X_s + c e^T)``, ``X_{s+1} = f(X_s + omega A^+ R_s)``."""
    Apinv = np.linalg.pinv(A)
    for _ in range(iters):
        R = B - relu(A @ X + c)
        X = relu(X + omega * Apinv @ R)
    return X


def naive_input_pinv(X, J, threshold, route, bias):
    """Sec. 3.3: ``X ~ U_1 S_1 V_1^T`` (s_i / s_1 > threshold), the batch ``X(:, J) ~ U_1 S_1 V_1(J,:)^T``;
    its exact pseudo-inverse (routes chol, qr), or the paper's literal slice ``V_1(J,:) S_1^-1 U_1^T``."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    k = s > threshold * s[0]
    U, s, V = U[:, k], s[k], Vt[k].T
    if bias:  # [X; e^T]: the ones row is kept exactly as one more factor
        m = X.shape[1]
        U = np.block([[U, np.zeros((U.shape[0], 1))], [np.zeros((1, U.shape[1])), np.ones((1, 1))]])
        s = np.append(s, np.sqrt(m))
        V = np.hstack([V, np.full((m, 1), 1 / np.sqrt(m))])
    if route == "literal":
        return V[J] @ np.diag(1 / s) @ U.T
    return np.linalg.pinv(U @ np.diag(s) @ V[J].T)


def naive_alg4_batch(Ws, XJ, YJ, Xpinv, S, L, omega, bias):
    """Algorithm 4, one iteration k on one mini-batch (lines 3-9)."""
    Ws = [W.copy() for W in Ws]
    d = len(Ws)
    Z = [XJ]  # Z_i^{(k-1)} of the current weights (line 9 of the previous iteration)
    for W in Ws[:-1]:
        Z.append(relu(W @ aug(Z[-1], bias)))
    Ws[d - 1], Zhat = naive_semi_nmf(YJ, Ws[d - 1], Z[d - 1], S, bias)  # line 3
    for i in range(d - 1, 1, -1):  # lines 4-7, paper's index i
        A = aug(Z[i - 1], bias)
        Ws[i - 1] = naive_alg2(Zhat, A, np.linalg.pinv(A), Ws[i - 1], L, omega)  # line 5
        Wz, c = split(Ws[i - 1], bias)
        Zhat = naive_alg3(Zhat, Wz, c, Z[i - 1], L, omega)  # line 6
    Ws[0] = naive_alg2(Zhat, aug(XJ, bias), Xpinv, Ws[0], L, omega)  # line 8
    return Ws


def ratio(a, b):
    """``a / b`` with ``0 / 0 = 0`` (a zero row of the data, a dead unit, keeps its factor at zero)."""
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def naive_nmf(A, W, H, iters):
    """Eq. (9) by Lee and Seung: ``H <- H (W^T A) / (W^T W H)``, then ``W <- W (A H^T) / (W H H^T)``."""
    for _ in range(iters):
        H = H * ratio(W.T @ A, W.T @ W @ H)
        W = W * ratio(A @ H.T, W @ H @ H.T)
    return W, H


def naive_alg5_layer(Zprev, Apinv, n_out, ae_iters, nmf_iters, lsq_iters, omega, rng, bias):
    """Algorithm 5, lines 2-7, for one layer."""
    Wt = rng.random((Zprev.shape[0], n_out))  # line 2: W~^{(0)}, Z^{(0)} uniform, W^{(0)} = 0
    Z = rng.random((n_out, Zprev.shape[1]))
    W = np.zeros((n_out, Zprev.shape[0] + bias))
    for _ in range(ae_iters):
        Wt, Zhat = naive_nmf(Zprev, Wt, Z, nmf_iters)  # line 4
        W = naive_alg2(Zhat, aug(Zprev, bias), Apinv, W, lsq_iters, omega)  # line 5
        Z = relu(W @ aug(Zprev, bias))  # line 6
    return W, Z


# -- small random problems ------------------------------------------------------------------------

def problem(hidden, bias, seed=0, n_in=12, m=400, b=80, n_out=4, nonneg=False):
    """Low-rank inputs with a clear spectral gap (so truncations agree) and random weights. Nonnegative
    inputs (NMF of the first autoencoder layer needs them) have a leading singular vector close to
    ``e``; with a bias the batch matrix ``[X_J; e^T]`` is then ill-conditioned, and Algorithm 4 does
    not need them, so its test uses inputs of both signs."""
    rng = np.random.default_rng(seed)
    draw = rng.random if nonneg else rng.standard_normal
    X = draw((n_in, 7)) @ draw((7, m)) + 1e-3 * draw((n_in, m))
    Y = np.eye(n_out)[:, rng.integers(0, n_out, m)]
    n = [n_in] + list(hidden) + [n_out]
    Ws = [rng.standard_normal((n[i + 1], n[i] + bias)) / np.sqrt(n[i]) for i in range(len(n) - 1)]
    J = np.sort(rng.choice(m, b, replace=False))
    return X, Y, Ws, J


THRESHOLD = 1e-2  # the input SVD's truncation in these tests


def sol(**kw):
    """Plain settings, no config node: the schema's defaults with ``kw`` (the math never sees Hydra)."""
    return NMFSettings.from_mapping(dataclasses.asdict(NMFSolverConfig(**kw)))


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("hidden", [[10], [10, 8], [10, 9, 8]], ids=["1 hidden", "2 hidden", "3 hidden"])
@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
@pytest.mark.parametrize("pinv", [p.value for p in Pinv])
@pytest.mark.parametrize("input_pinv", [p.value for p in InputPinv])
def test_finetune_batch_is_algorithm_4(bk64, hidden, bias, pinv, input_pinv):
    X, Y, Ws, J = problem(hidden, bias)
    s = sol(pinv=pinv, input_pinv=input_pinv, bias=bias, lsq_iters=3, semi_nmf_iters=2, omega=0.7)
    xsvd = input_svd(bk64, X, THRESHOLD, bias)
    assert xsvd.rank == 7 + bias
    got = [W.copy() for W in Ws]
    finetune_batch(bk64, dense(got, bias), got, X[:, J], Y[:, J], batch_input_pinv(bk64, xsvd, J, s.input_pinv), s)
    ref = naive_alg4_batch(Ws, X[:, J], Y[:, J], naive_input_pinv(X, J, THRESHOLD, input_pinv, bias),
                           s.semi_nmf_iters, s.lsq_iters, s.omega, bias)
    for i, (g, r) in enumerate(zip(got, ref)):
        assert rel(g, r) < 1e-7, f"W_{i + 1}"
        assert not np.allclose(r, Ws[i])  # every layer was updated


def test_the_reference_would_notice_a_changed_algorithm_4():
    """The transcription is sensitive to what it guards: dropping omega, or running line 6 before
    line 5 (Algorithm 3 with the old W_i), changes the result far beyond the tolerance above."""
    X, Y, Ws, J = problem([10, 8], False)
    Xp = naive_input_pinv(X, J, 1e-2, "chol", False)
    ref = naive_alg4_batch(Ws, X[:, J], Y[:, J], Xp, 2, 3, 0.7, False)
    no_omega = naive_alg4_batch(Ws, X[:, J], Y[:, J], Xp, 2, 3, 1.0, False)
    assert max(rel(a, b) for a, b in zip(no_omega, ref)) > 1e-3
    Z1 = relu(Ws[0] @ X[:, J])
    W3, Zhat = naive_semi_nmf(Y[:, J], Ws[2], relu(Ws[1] @ Z1), 2, False)
    Z1_swapped = naive_alg3(Zhat, Ws[1], 0.0, Z1, 3, 0.7)  # line 6 with W_2^{(k-1)}
    Z1_paper = naive_alg3(Zhat, naive_alg2(Zhat, Z1, np.linalg.pinv(Z1), Ws[1], 3, 0.7), 0.0, Z1, 3, 0.7)
    assert rel(Z1_swapped, Z1_paper) > 1e-3


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
@pytest.mark.parametrize("pinv", [p.value for p in Pinv])
def test_semi_nmf_is_equation_4(bk64, pinv, bias):
    rng = np.random.default_rng(3)
    Y, Z0 = rng.standard_normal((4, 60)), rng.random((10, 60))
    W0 = rng.standard_normal((4, 10 + bias))
    W, Z = semi_nmf(bk64, Y, W0, Z0, iters=3, rcond=1e-14, pinv=pinv, bias=bias)
    Wr, Zr = naive_semi_nmf(Y, W0, Z0, 3, bias)
    assert rel(W, Wr) < 1e-8 and rel(Z, Zr) < 1e-8


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
@pytest.mark.parametrize("layer", ["first", "hidden"])
@pytest.mark.parametrize("pinv", [p.value for p in Pinv])
def test_pretrain_layer_is_algorithm_5(bk64, pinv, layer, bias):
    """One layer of Algorithm 5: on the input (first layer, the batch input pseudo-inverse of Sec. 3.3)
    and on a hidden layer's output (the pseudo-inverse of ``solver.pinv``)."""
    from nmfdnn.method.linalg import right_pinv

    X, _, Ws, J = problem([10], bias, seed=5, nonneg=True)
    s = sol(pinv=pinv, bias=bias, ae_iters=2, ae_nmf_iters=3, ae_lsq_iters=2, omega=0.8)
    if layer == "first":
        Zprev = X[:, J]
        P = batch_input_pinv(bk64, input_svd(bk64, X, THRESHOLD, bias), J, s.input_pinv)
        Pref = naive_input_pinv(X, J, THRESHOLD, s.input_pinv, bias)
    else:
        Zprev = relu(Ws[0] @ aug(X[:, J], bias))
        P = right_pinv(bk64, aug(Zprev, bias), s.hidden_rcond, s.pinv)
        Pref = np.linalg.pinv(aug(Zprev, bias))
    W, Z = pretrain_layer(bk64, Zprev, P, 6, s, np.random.default_rng(9), bias=bias)
    Wr, Zr = naive_alg5_layer(Zprev, Pref, 6, s.ae_iters, s.ae_nmf_iters, s.ae_lsq_iters, s.omega,
                              np.random.default_rng(9), bias)
    assert rel(W, Wr) < 1e-7 and rel(Z, Zr) < 1e-7


@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
def test_reported_objective_is_equation_3(bk64, bias):
    """``network.evaluate``'s objective (written to metrics) is ``1/2 ||Y - W_d f(... f(W_1 X))||_F^2``
    computed directly, over several chunks."""
    X, Y, Ws, _ = problem([10, 8], bias, m=250)
    labels = Y.argmax(axis=0)
    out = X
    for W in Ws[:-1]:
        out = relu(W @ aug(out, bias))
    out = Ws[-1] @ aug(out, bias)
    net = dense(Ws, bias)
    err, obj = evaluate(bk64, net, Ws, X, labels, chunk=60)
    assert obj == pytest.approx(0.5 * np.sum((Y - out) ** 2), rel=1e-12)
    assert err == pytest.approx(100 * np.mean(out.argmax(axis=0) != labels))
    np.testing.assert_allclose(output(bk64, net, Ws, X), out, rtol=1e-12)
