"""sample_weight in the exact solves: statsmodels' WLS on the linear families, and for the
nonlinear ones the identity "integer weight w_i = row i repeated w_i times" (which fixes the
parameters and the RSS of the weighted fit without any weighted code)."""
import warnings

import numpy as np
import pytest
import tensorflow as tf

from bwkeras.datasets import nist_strd
from bwkeras.regression import (ConvergenceWarning, LinearRegression, ParametricRegression,
                                PolynomialRegression, least_squares)

sm = pytest.importorskip("statsmodels.api")

# Both sides are exact float64 solves of problems with condition numbers below 1e4, so they
# agree to ~1e-12; 1e-9 leaves three digits for the different factorisations.
RTOL = 1e-9


def data(seed=0, n=60):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 3.0, size=(n, 2))
    w = rng.uniform(0.2, 5.0, size=n)
    y = 1.5 + x @ [2.0, -0.7] + rng.normal(size=n) / np.sqrt(w)
    return x, y, w


def check_against_wls(result, ref, names):
    np.testing.assert_allclose(result.params[names].to_numpy(), ref.params, rtol=RTOL)
    np.testing.assert_allclose(result.std_errors[names].to_numpy(), ref.bse, rtol=RTOL)
    assert result.rss == pytest.approx(ref.ssr, rel=RTOL)
    assert result.r_squared == pytest.approx(ref.rsquared, rel=RTOL)
    assert result.df_resid == ref.df_resid and result.n_obs == ref.nobs


def test_linear_weighted_equals_statsmodels_wls():
    x, y, w = data()
    ref = sm.WLS(y, sm.add_constant(x), weights=w).fit()
    result = LinearRegression(n_features=2, dtype="float64").solve(x, y, sample_weight=w)
    check_against_wls(result, ref, ["b", "m_1", "m_2"])


def test_polynomial_weighted_equals_statsmodels_wls_and_streams():
    x, y, w = data(1)
    x1 = x[:, 0]
    y = 0.3 - x1 + 0.5 * x1 ** 2 + 0.1 * x1 ** 3 + np.random.default_rng(1).normal(size=len(y)) / np.sqrt(w)
    ref = sm.WLS(y, np.vander(x1, 4, increasing=True), weights=w).fit()
    model = PolynomialRegression(3, dtype="float64")
    names = model.param_names
    check_against_wls(model.solve(x1, y, sample_weight=w), ref, names)
    # Streamed: the weights ride in each batch as a third element.
    ds = tf.data.Dataset.from_tensor_slices((x1, y, w)).batch(7)
    check_against_wls(PolynomialRegression(3, dtype="float64").solve(ds, verbose=False), ref, names)


def test_no_intercept_weighted_equals_statsmodels_wls():
    x, y, w = data(2)
    ref = sm.WLS(y, x, weights=w).fit()
    result = least_squares(x, y, param_names=["a", "b"], intercept=False, sample_weight=w)
    check_against_wls(result, ref, ["a", "b"])


def test_nonlinear_integer_weights_equal_repeated_rows():
    p = nist_strd("Misra1a")
    w = np.arange(len(p.y)) % 3 + 1
    start = dict(zip(p.param_names, p.starts[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        weighted = ParametricRegression(p.expression, start, dtype="float64").solve(p.x, p.y, sample_weight=w)
        repeated = ParametricRegression(p.expression, start, dtype="float64").solve(
            np.repeat(p.x, w), np.repeat(p.y, w))
    # Same objective function, so the same optimum and RSS to the solves' precision
    # (NIST-level LRE > 9 on this problem; 1e-8 relative is a margin of ten).
    np.testing.assert_allclose(weighted.params.to_numpy(), repeated.params.to_numpy(), rtol=1e-8)
    assert weighted.rss == pytest.approx(repeated.rss, rel=1e-8)
    # The covariance differs only through the residual degrees of freedom (rows vs weights).
    df_w, df_r = weighted.df_resid, repeated.df_resid
    np.testing.assert_allclose(weighted.std_errors.to_numpy() ** 2 * df_w,
                               repeated.std_errors.to_numpy() ** 2 * df_r, rtol=1e-7)
    # Unit weights change nothing.
    ones = ParametricRegression(p.expression, start, dtype="float64").solve(p.x, p.y, sample_weight=np.ones(len(p.y)))
    plain = ParametricRegression(p.expression, start, dtype="float64").solve(p.x, p.y)
    np.testing.assert_allclose(ones.params.to_numpy(), plain.params.to_numpy(), rtol=1e-12)


def test_linear_weighted_equals_nonlinear_weighted():
    # The same weighted problem through QR and through Levenberg-Marquardt.
    x, y, w = data(3)
    lin = LinearRegression(dtype="float64").solve(x[:, 0], y, sample_weight=w)
    nonlin = ParametricRegression("b + m*x", {"b": 0.0, "m": 0.0}, dtype="float64").solve(
        x[:, 0], y, sample_weight=w)
    np.testing.assert_allclose(nonlin.params[["b", "m"]].to_numpy(), lin.params[["b", "m"]].to_numpy(),
                               rtol=RTOL)
    assert nonlin.r_squared == pytest.approx(lin.r_squared, rel=RTOL)


def test_bad_weights_are_named():
    x, y, w = data()
    model = LinearRegression(n_features=2, dtype="float64")
    with pytest.raises(ValueError, match=r"sample_weight must be one weight per sample, shape \(60,\)"):
        model.solve(x, y, sample_weight=w[:5])
    bad = w.copy()
    bad[4] = -1.0
    with pytest.raises(ValueError, match="sample_weight must be >= 0; got -1.0 at row 4"):
        model.solve(x, y, sample_weight=bad)
    bad[4] = np.nan
    with pytest.raises(ValueError, match="sample_weight contains NaN or inf"):
        model.solve(x, y, sample_weight=bad)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(10)
    with pytest.raises(TypeError, match="a streamed data set carries its weights in its batches"):
        model.solve(ds, sample_weight=w)
