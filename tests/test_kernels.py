"""The in-place element-wise kernels compute their formulas, in place, in both dtypes."""

import numpy as np
from nmfdnn.method import kernels


def _big(rng, dt, shape=(300, 500)):
    return rng.standard_normal(shape).astype(dt)


def test_relu_and_residual_kernels(bk, rng):
    dt = bk.dtype
    U, B, X = _big(rng, dt), _big(rng, dt), _big(rng, dt)
    expect_relu = np.maximum(U, 0)
    expect_res = B - np.maximum(U, 0)
    expect_add = np.maximum(X + U, 0)
    V = U.copy()
    assert bk.relu(V, out=V) is V and V.dtype == dt
    np.testing.assert_array_equal(V, expect_relu)
    V = U.copy()
    out = kernels.residual_relu_(bk, B, V)
    assert out is V and V.dtype == dt
    np.testing.assert_allclose(V, expect_res, rtol=0, atol=0)
    V, R = U.copy(), np.empty_like(U)  # into a buffer: the same bits, U kept
    assert kernels.residual_relu_(bk, B, V, out=R) is R and np.array_equal(V, U)
    np.testing.assert_allclose(R, expect_res, rtol=0, atol=0)
    V = U.copy()
    out = kernels.add_relu_(bk, X, V)
    assert out is V and (V >= 0).all()
    np.testing.assert_allclose(V, expect_add, rtol=4 * np.finfo(dt).eps)


def test_semi_nmf_ratio_kernel(bk, rng):
    dt = bk.dtype
    Z = np.abs(_big(rng, dt))
    Z[0, :10] = 0.0  # zero entries with a vanishing denominator must stay 0, not NaN
    a = np.abs(_big(rng, dt)) + 1.0
    low = 0.5 * _big(rng, dt)
    low[0, :10] = 0.0
    a[0, :10] = 0.0
    y = _big(rng, dt)
    num = np.maximum(0.5 * (a - low), 0) + np.maximum(y, 0)
    den = np.maximum(0.5 * (a + low) + np.maximum(-y, 0), np.finfo(dt).tiny)
    with np.errstate(over="ignore"):
        expect = Z * np.sqrt(np.minimum(num / den, 1 / np.finfo(dt).eps))
    got = kernels.semi_nmf_ratio_(bk, Z, a.copy(), low.copy(), y.copy())
    assert got.dtype == dt and np.isfinite(got).all() and (got >= 0).all()
    assert np.all(got[0, :10] == 0)
    # where the numerator cancels to ~0 the square root turns eps into sqrt(eps)
    eps = np.finfo(dt).eps
    np.testing.assert_allclose(got, expect, rtol=100 * eps, atol=10 * np.sqrt(eps) * Z.max())
