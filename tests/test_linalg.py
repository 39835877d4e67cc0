"""Pseudo-inverse strategies agree with a direct pseudo-inverse on small problems."""

import numpy as np
import pytest

from nmfdnn.method.linalg import batch_input_pinv, input_svd, left_pinv, right_pinv


def _tol(bk):
    return 1e-9 if bk.dtype == np.float64 else 2e-3


@pytest.mark.parametrize("method", ["chol", "gram", "svd"])
def test_right_pinv_matches_numpy(bk, rng, method):
    A = bk.asarray(rng.random((30, 200)))  # wide, full row rank, well conditioned
    R = bk.asarray(rng.standard_normal((7, 200)))
    P = right_pinv(bk, A, rcond=1e-14, method=method)
    expect = R.astype(np.float64) @ np.linalg.pinv(A.astype(np.float64))
    got = P.apply(R)
    assert got.dtype == bk.dtype and got.shape == (7, 30)
    assert np.linalg.norm(got - expect) <= _tol(bk) * np.linalg.norm(expect) * 10
    assert P.rank == 30


@pytest.mark.parametrize("method", ["gram", "svd"])
def test_right_pinv_truncates_rank_deficient(bk64, rng, method):
    A = rng.random((20, 5)) @ rng.random((5, 100))  # rank 5
    P = right_pinv(bk64, A, rcond=1e-8, method=method)
    assert P.rank == 5
    R = rng.standard_normal((3, 100))
    np.testing.assert_allclose(P.apply(R), R @ np.linalg.pinv(A, rcond=1e-8), rtol=1e-6, atol=1e-8)


def test_chol_pinv_on_rank_deficient_input(bk64, rng):
    """``chol`` damps instead of truncating: on a rank-5 matrix its fitted values ``X A`` are the
    least-squares ones, a zero row of ``A`` (a dead unit) gets a zero column, and a matrix whose
    regularised Gram still fails to factor is handled by the ``gram`` route."""
    A = rng.random((20, 5)) @ rng.random((5, 100))
    A[7] = 0.0
    R = rng.standard_normal((3, 100))
    X = right_pinv(bk64, A, rcond=1e-14, method="chol").apply(R)
    best = R @ np.linalg.pinv(A, rcond=1e-10) @ A
    assert np.linalg.norm(X @ A - best) <= 1e-6 * np.linalg.norm(best)
    assert np.all(X[:, 7] == 0.0)
    # a zero matrix cannot be factored at all: the gram route returns the zero map
    P = right_pinv(bk64, np.zeros((4, 9)), rcond=1e-14, method="chol")
    assert P.rank == 0 and np.all(P.apply(rng.standard_normal((2, 9))) == 0)


@pytest.mark.parametrize("method", ["chol", "gram", "svd"])
@pytest.mark.parametrize("shape", [(10, 40), (40, 10)])
def test_left_pinv_matches_numpy(bk, rng, method, shape):
    A = bk.asarray(rng.standard_normal(shape))
    got = left_pinv(bk, A, rcond=1e-14, method=method)
    assert got.shape == shape[::-1] and got.dtype == bk.dtype
    np.testing.assert_allclose(got, np.linalg.pinv(A.astype(np.float64)), rtol=0, atol=_tol(bk) * 100)


def test_input_svd_and_batch_pinv(bk64, rng):
    X = rng.random((50, 400)) ** 3
    svd = input_svd(bk64, X, threshold=0.0)
    assert svd.rank == 50
    np.testing.assert_allclose((svd.U * svd.s) @ svd.V.T, X, atol=1e-9)
    J = np.sort(rng.choice(400, 120, replace=False))
    R = rng.standard_normal((6, 120))
    exact = R @ np.linalg.pinv(X[:, J])
    np.testing.assert_allclose(batch_input_pinv(bk64, svd, J, "qr").apply(R), exact, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(batch_input_pinv(bk64, svd, J, "chol").apply(R), exact, rtol=1e-6, atol=1e-8)
    # fewer samples than the rank (30 < 50): both exact methods give the batch's own pseudo-inverse
    few = J[:30]
    Xr = (svd.U * svd.s) @ svd.V[few].T
    for method in ("chol", "qr"):
        np.testing.assert_allclose(batch_input_pinv(bk64, svd, few, method).apply(R[:, :30]),
                                   R[:, :30] @ np.linalg.pinv(Xr), rtol=1e-6, atol=1e-8)
    # 80 columns but only 40 distinct samples: rank 40 < 50, whatever the Cholesky factorisation says
    dup = np.concatenate([J[:40], J[:40]])
    Xd = (svd.U * svd.s) @ svd.V[dup].T
    for method in ("chol", "qr"):
        np.testing.assert_allclose(batch_input_pinv(bk64, svd, dup, method).apply(R[:, :80]),
                                   R[:, :80] @ np.linalg.pinv(Xd), rtol=1e-6, atol=1e-8)
    literal = batch_input_pinv(bk64, svd, J, "literal").apply(R)
    np.testing.assert_allclose(literal, R @ svd.V[J] @ np.diag(1 / svd.s) @ svd.U.T, atol=1e-10)
    # the literal slice is not the batch's pseudo-inverse
    assert np.linalg.norm(literal - exact) > 1e-3 * np.linalg.norm(exact)


def test_input_svd_truncation_and_bias(bk64, rng):
    X = rng.random((30, 5)) @ rng.random((5, 300)) + 1e-6 * rng.random((30, 300))
    svd = input_svd(bk64, X, threshold=1e-3)
    assert svd.rank == 5
    svdb = input_svd(bk64, X, threshold=1e-3, bias=True)
    assert svdb.rank == 6 and svdb.U.shape == (31, 6)
    Xa = np.vstack([X, np.ones((1, 300))])
    J = np.arange(0, 300, 3)
    R = rng.standard_normal((4, J.size))
    # qr gives the exact pseudo-inverse of the rank-6 approximation of the augmented batch
    Xr = (svdb.U * svdb.s) @ svdb.V[J].T
    np.testing.assert_allclose(Xr, Xa[:, J], atol=1e-4)
    np.testing.assert_allclose(batch_input_pinv(bk64, svdb, J, "qr").apply(R), R @ np.linalg.pinv(Xr, rcond=1e-10),
                               rtol=1e-6, atol=1e-8)


def test_float32_products_with_float64_factorisations(rng):
    """``solver.factor_dtype=float64`` with ``dtype=float32``: the factorisations run in float64 (their
    floors use float64's epsilon), the results come back in float32, and a least-squares solve with a
    moderately ill-conditioned matrix is never further from the float64 answer than pure float32's
    (closer by the Cholesky route)."""
    from nmfdnn.backend import get_backend

    bk64, bk32, mixed = (get_backend("numpy", "float64"), get_backend("numpy", "float32"),
                         get_backend("numpy", "float32", "float64"))
    assert mixed.factor_eps == bk64.eps and mixed.eps == bk32.eps
    A = (rng.standard_normal((40, 400)) * np.logspace(0, -2.5, 40)[:, None])  # cond(A A^T) ~ 1e5
    R = rng.standard_normal((5, 400))
    for method in ("chol", "gram", "svd"):
        ref = right_pinv(bk64, A, 1e-14, method).apply(R)
        err = {}
        for name, b in (("float32", bk32), ("mixed", mixed)):
            got = right_pinv(b, b.asarray(A), 1e-14, method).apply(b.asarray(R))
            assert got.dtype == np.float32
            err[name] = np.linalg.norm(got - ref) / np.linalg.norm(ref)
        # chol: float32's shift p eps_32 max G_ii damps real directions, float64's does not; gram and
        # svd keep every direction here in both, and the float32 products dominate their error.
        assert err["mixed"] < err["float32"] if method == "chol" else err["mixed"] <= err["float32"], (method, err)
    W = rng.standard_normal((30, 50)).astype(np.float32)
    assert left_pinv(mixed, W, 1e-14, "chol").dtype == np.float32
