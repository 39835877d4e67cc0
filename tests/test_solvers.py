"""Contracts of the solvers: objectives decrease, constraints hold, shapes and dtypes, and agreement
with a direct least-squares solve where the ReLU acts as the identity."""

import numpy as np
import pytest

from nmfdnn.config import NMFSolverConfig, Pinv
from nmfdnn.method.linalg import left_pinv, right_pinv
from nmfdnn.method.nmf import nmf, nmf_objective
from nmfdnn.method.nonlinear_lsq import (alg2, alg2_right, alg2_right_carried, alg3_left, nlsq_objective_left,
                                         nlsq_objective_right)
from nmfdnn.method.semi_nmf import semi_nmf, semi_nmf_objective, update_w, update_z

SHIPPED = NMFSolverConfig()  # the shipped defaults: every route below includes the one a user gets
PINVS = [m.value for m in Pinv]
assert SHIPPED.pinv.value in PINVS


def rel(a, b):
    return np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)) / np.linalg.norm(np.asarray(b, np.float64))


def tol(bk):
    return 1e-10 if bk.dtype == np.float64 else 1e-3


# -- Algorithm 2 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pinv", PINVS)
def test_alg2_one_step_is_least_squares_when_relu_is_identity(bk, rng, pinv):
    """B = X* A with X* A > 0: one step from X0 = 0 returns the least-squares solution B A^+ = X*."""
    A = bk.asarray(rng.random((15, 300)))
    Xstar = bk.asarray(rng.random((8, 15)) + 0.1)
    B = Xstar @ A
    X = alg2_right(bk, B, A, right_pinv(bk, A, 1e-14, pinv), bk.asarray(np.zeros((8, 15))), iters=1, omega=1.0)
    assert X.dtype == bk.dtype and X.shape == (8, 15)
    assert rel(X, Xstar) < tol(bk) * 10
    assert nlsq_objective_right(bk, B, X, A) < 1e-6 * nlsq_objective_right(bk, B, 0 * X, A)


@pytest.mark.parametrize("pinv", PINVS)
def test_alg2_decreases_objective(bk, rng, pinv):
    A = bk.asarray(rng.random((40, 500)))
    Xtrue = rng.standard_normal((20, 40))
    B = bk.asarray(np.maximum(Xtrue @ A, 0) + 0.01 * rng.random((20, 500)))
    X0 = bk.asarray(Xtrue + 0.3 * rng.standard_normal((20, 40)))
    X0_before = X0.copy()
    P = right_pinv(bk, A, 1e-14, pinv)
    objs = [nlsq_objective_right(bk, B, X0, A)]
    X = X0
    for _ in range(5):
        X = alg2_right(bk, B, A, P, X, iters=1, omega=SHIPPED.omega)
        objs.append(nlsq_objective_right(bk, B, X, A))
    assert objs[-1] < 0.1 * objs[0]
    assert all(b <= a * (1 + 1e-6) for a, b in zip(objs, objs[1:]))
    np.testing.assert_array_equal(X0, X0_before)  # the initial guess is not modified


def test_alg2_reused_forward_pass_and_carried_product_give_the_same_iterates(bk64, rng):
    """``fx0 = f(X0 A)`` replaces the first product, and with a low-rank factored ``A^dagger`` (the
    truncated input SVD) :func:`alg2_right_carried` carries ``X_s A`` instead of recomputing it: the
    same iterates as the plain :func:`alg2_right`; :func:`alg2` picks the carried one when it pays."""
    from nmfdnn.method.linalg import batch_input_pinv, input_svd

    Xin = rng.random((60, 8)) @ rng.random((8, 400)) + 0.01 * rng.random((60, 400))
    svd = input_svd(bk64, Xin, threshold=0.05)
    assert svd.rank < 15  # so that the carried product pays for iters >= 2
    J = np.arange(0, 400, 2)
    A = Xin[:, J]
    P = batch_input_pinv(bk64, svd, J, "chol")
    assert P.low_rank
    B = np.maximum(rng.standard_normal((50, 60)) @ A, 0)
    X0 = 0.1 * rng.standard_normal((50, 60))
    fx0 = np.maximum(X0 @ A, 0)
    for iters in (1, 2, 7):
        for omega in (1.0, 0.5):
            ref = alg2_right(bk64, B, A, P, X0, iters, omega)
            np.testing.assert_allclose(alg2_right_carried(bk64, B, A, P, X0, iters, omega), ref, rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(alg2_right_carried(bk64, B, A, P, X0, iters, omega, fx0=fx0), ref,
                                       rtol=1e-9, atol=1e-10)
            np.testing.assert_allclose(alg2_right(bk64, B, A, P, X0, iters, omega, fx0=fx0), ref,
                                       rtol=1e-9, atol=1e-10)
            np.testing.assert_array_equal(alg2(bk64, B, A, P, X0, iters, omega),
                                          (alg2_right_carried if iters > 1 else alg2_right)(bk64, B, A, P, X0, iters,
                                                                                            omega))


# -- Algorithm 3 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pinv", PINVS)
def test_alg3_one_step_is_least_squares_when_relu_is_identity(bk, rng, pinv):
    """A >= 0 of full column rank, B = A X* with X* >= 0: one step from X0 >= 0 returns X*."""
    A = bk.asarray(rng.random((60, 20)))
    Xstar = bk.asarray(rng.random((20, 100)))
    X0 = bk.asarray(rng.random((20, 100)))
    X = alg3_left(bk, A @ Xstar, A, left_pinv(bk, A, 1e-14, pinv), X0, iters=1, omega=1.0)
    assert X.dtype == bk.dtype and X.shape == (20, 100)
    assert rel(X, Xstar) < tol(bk) * 100


@pytest.mark.parametrize("pinv", PINVS)
def test_alg3_keeps_nonnegativity_and_decreases_objective(bk, rng, pinv):
    A = bk.asarray(rng.standard_normal((30, 50)))
    Xtrue = np.maximum(rng.standard_normal((50, 400)), 0)
    offset = bk.asarray(0.1 * rng.standard_normal((30, 1)))
    B = bk.asarray(np.maximum(A @ Xtrue + offset, 0))
    X0 = bk.asarray(np.maximum(Xtrue + 0.3 * rng.standard_normal(Xtrue.shape), 0))
    Ap = left_pinv(bk, A, 1e-14, pinv)
    X = alg3_left(bk, B, A, Ap, X0, iters=10, omega=SHIPPED.omega, offset=offset)
    assert (X >= 0).all()
    assert nlsq_objective_left(bk, B, A, X, offset) < 0.5 * nlsq_objective_left(bk, B, A, X0, offset)


# -- semi-NMF (4) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("pinv", PINVS)
def test_update_w_is_least_squares(bk64, rng, pinv):
    Y, Z = rng.standard_normal((5, 200)), rng.random((12, 200))
    np.testing.assert_allclose(update_w(bk64, Y, Z, 1e-14, pinv), np.linalg.lstsq(Z.T, Y.T, rcond=None)[0].T,
                               rtol=1e-8, atol=1e-10)
    Wb = update_w(bk64, Y, Z, 1e-14, pinv, bias=True)
    Za = np.vstack([Z, np.ones((1, 200))])
    np.testing.assert_allclose(Wb, np.linalg.lstsq(Za.T, Y.T, rcond=None)[0].T, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("bias", [False, True])
def test_update_z_is_monotone_and_nonnegative(bk, rng, bias):
    Y = bk.asarray(rng.standard_normal((6, 300)))
    W = bk.asarray(rng.standard_normal((6, 25 + bias)))
    Z = bk.asarray(rng.random((25, 300)))
    objs = [semi_nmf_objective(bk, Y, W, Z, bias)]
    for _ in range(20):
        Z = update_z(bk, Y, W, Z, bias)
        assert (Z >= 0).all() and Z.dtype == bk.dtype
        objs.append(semi_nmf_objective(bk, Y, W, Z, bias))
    assert all(b <= a * (1 + 10 * bk.eps) for a, b in zip(objs, objs[1:]))
    assert objs[-1] < objs[0]


def test_update_z_low_rank_route_matches_the_direct_formula(bk64, rng):
    """With few outputs (q < p/2) the update uses ``W^T (W Z)`` instead of two p x p products; it
    must give the same multiplicative update as ``[W^T W]^+- Z`` formed directly."""
    Y, W, Z = rng.standard_normal((4, 200)), rng.standard_normal((4, 30)), rng.random((30, 200))
    WtY, WtW = W.T @ Y, W.T @ W
    pos, neg = lambda M: (np.abs(M) + M) / 2, lambda M: (np.abs(M) - M) / 2
    expect = Z * np.sqrt((pos(WtY) + neg(WtW) @ Z) / (neg(WtY) + pos(WtW) @ Z))
    np.testing.assert_allclose(update_z(bk64, Y, W, Z), expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("pinv", PINVS)
def test_semi_nmf_decreases_objective(bk, rng, pinv):
    Y = bk.asarray(rng.standard_normal((8, 400)))
    Z0 = bk.asarray(rng.random((30, 400)))
    W0 = bk.asarray(np.zeros((8, 30)))
    objs = []
    W, Z = W0, Z0
    for _ in range(10):
        W, Z = semi_nmf(bk, Y, W, Z, iters=1, rcond=1e-14, pinv=pinv)
        objs.append(semi_nmf_objective(bk, Y, W, Z))
        assert (Z >= 0).all()
    assert W.shape == (8, 30) and W.dtype == bk.dtype
    assert all(b <= a * (1 + 1e-5) for a, b in zip(objs, objs[1:]))
    assert objs[-1] < objs[0]


def test_semi_nmf_zero_iterations_is_identity(bk64, rng):
    W0, Z0 = rng.standard_normal((3, 4)), rng.random((4, 10))
    W, Z = semi_nmf(bk64, rng.standard_normal((3, 10)), W0, Z0, iters=0, rcond=1e-14,
                    pinv=SHIPPED.pinv)
    assert W is W0 and Z is Z0


# -- NMF (9) --------------------------------------------------------------------------------------

def test_nmf_decreases_objective_and_stays_nonnegative(bk, rng):
    A = bk.asarray(rng.random((40, 10)) @ rng.random((10, 300)))
    W, H = bk.asarray(rng.random((40, 10))), bk.asarray(rng.random((10, 300)))
    objs = [nmf_objective(bk, A, W, H)]
    for _ in range(10):
        W, H = nmf(bk, A, W, H, iters=5)
        objs.append(nmf_objective(bk, A, W, H))
        assert (W >= 0).all() and (H >= 0).all()
    assert all(b <= a * (1 + 1e-5) for a, b in zip(objs, objs[1:]))
    assert objs[-1] < 0.05 * objs[0]
    assert W.dtype == bk.dtype and H.dtype == bk.dtype
