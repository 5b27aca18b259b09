"""Confidence and prediction intervals at new x (`FitResult.get_prediction`).

Linear families: against statsmodels OLS / WLS `get_prediction(exog).summary_frame(alpha)`,
all six columns. Both sides are exact float64 solves of problems with condition numbers
below 1e4 (the intervals are x^T C x from the same covariance) and the t quantile is ours
by bisection to float64 resolution against scipy's, so they agree to ~1e-12; rtol 1e-9
leaves three digits for the different factorisations.

Nonlinear families (delta method): a formula that is linear in its parameters must give
OLS's intervals exactly (the delta method is exact there), and on a NIST problem the
autodiff gradient must reproduce the analytic one, g(x)^T C g(x).
"""
import warnings

import numpy as np
import pandas as pd
import pytest

from bwkeras.datasets import nist_strd
from bwkeras.regression import (LinearRegression, LogisticRegression, ParametricRegression,
                                PolynomialRegression, Prediction)

sm = pytest.importorskip("statsmodels.api")
stats = pytest.importorskip("scipy.stats")

RTOL = 1e-9
COLUMNS = ["mean", "mean_se", "mean_ci_lower", "mean_ci_upper", "obs_ci_lower", "obs_ci_upper"]


def data(seed=0, n=50):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 3.0, size=(n, 2))
    y = 1.5 + x @ [2.0, -0.7] + rng.normal(scale=0.5, size=n)
    return x, y


def check_frame(frame, ref):
    assert list(frame.columns) == COLUMNS
    np.testing.assert_allclose(frame[COLUMNS].to_numpy(), ref[COLUMNS].to_numpy(), rtol=RTOL)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_linear_intervals_equal_statsmodels_ols(alpha):
    x, y = data()
    new = np.array([[0.0, 0.0], [1.0, -1.0], [5.0, 4.0]])   # the last far outside the data
    result = LinearRegression(n_features=2, dtype="float64").solve(x, y)
    ref = sm.OLS(y, sm.add_constant(x)).fit().get_prediction(sm.add_constant(new, has_constant="add"))
    check_frame(result.get_prediction(new).summary_frame(alpha), ref.summary_frame(alpha=alpha))


def test_polynomial_and_weighted_intervals_equal_statsmodels():
    x, y = data(1)
    x1 = x[:, 0]
    w = np.random.default_rng(1).uniform(0.2, 5.0, size=len(y))
    new = np.linspace(-3.0, 4.0, 9)
    result = PolynomialRegression(2, dtype="float64").solve(x1, y, sample_weight=w)
    X = np.vander(x1, 3, increasing=True)
    fit = sm.WLS(y, X, weights=w).fit()
    new_w = np.linspace(0.5, 2.0, 9)
    ref = fit.get_prediction(np.vander(new, 3, increasing=True), weights=new_w)
    check_frame(result.get_prediction(new, sample_weight=new_w).summary_frame(), ref.summary_frame())
    ref1 = fit.get_prediction(np.vander(new, 3, increasing=True))        # unit weights
    check_frame(result.get_prediction(new).summary_frame(), ref1.summary_frame())


def test_delta_method_is_exact_on_a_formula_linear_in_its_parameters():
    x, y = data(2)
    model = ParametricRegression("b0 + b1*x1 + b2*x2", ["b0", "b1", "b2"], inputs=("x1", "x2"),
                                 dtype="float64")
    result = model.solve(x, y)
    new = pd.DataFrame({"x2": [0.5, -1.0], "x1": [2.0, 0.0]})   # by column name
    ref = sm.OLS(y, sm.add_constant(x)).fit().get_prediction(
        sm.add_constant(new[["x1", "x2"]].to_numpy(), has_constant="add"))
    check_frame(result.get_prediction(new).summary_frame(), ref.summary_frame())


def test_delta_method_on_misra1a_uses_the_model_gradient():
    """y = b1 (1 - exp(-b2 x)): g = (1 - exp(-b2 x), b1 x exp(-b2 x)). Autodiff and the
    analytic gradient differ by rounding only (1e-12 relative)."""
    p = nist_strd("Misra1a")
    model = ParametricRegression(p.expression, dict(zip(p.param_names, p.starts[1])), dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = model.solve(p.x, p.y)
    b1, b2 = result.params
    new = np.array([10.0, 300.0, 1000.0])
    g = np.column_stack([1 - np.exp(-b2 * new), b1 * new * np.exp(-b2 * new)])
    C = result.cov_params().to_numpy()
    var = np.einsum("ij,jk,ik->i", g, C, g)
    pred = result.get_prediction(new)
    assert isinstance(pred, Prediction)
    np.testing.assert_allclose(pred.predicted_mean, b1 * (1 - np.exp(-b2 * new)), rtol=1e-12)
    np.testing.assert_allclose(pred.se_mean, np.sqrt(var), rtol=1e-12)
    np.testing.assert_allclose(pred.se_obs, np.sqrt(var + result.residual_sd ** 2), rtol=1e-12)
    frame = pred.summary_frame(alpha=0.05)
    q = float(stats.t.ppf(0.975, result.df_resid))   # scipy's quantile, an outside reference
    np.testing.assert_allclose(frame["mean_ci_upper"] - frame["mean"], q * pred.se_mean, rtol=1e-9)
    # the intervals nest: the mean's inside the observation's
    assert (frame["obs_ci_lower"] < frame["mean_ci_lower"]).all()
    assert (frame["mean_ci_upper"] < frame["obs_ci_upper"]).all()


def test_a_parameter_held_on_a_bound_adds_no_variance():
    p = nist_strd("Misra1a")
    model = ParametricRegression(p.expression, {"b1": 150.0, "b2": 1e-4}, dtype="float64")
    result = model.solve(p.x, p.y, bounds={"b1": (None, 200.0)})
    new = np.array([100.0, 500.0])
    b2 = result.params["b2"]
    g2 = 200.0 * new * np.exp(-b2 * new)       # only b2 varies
    np.testing.assert_allclose(result.get_prediction(new).se_mean, np.abs(g2) * result.bse["b2"],
                               rtol=1e-12)


def test_likelihood_fits_use_the_normal_and_have_no_observation_interval():
    rng = np.random.default_rng(4)
    x = rng.normal(size=400)
    y = (rng.uniform(size=400) < 1 / (1 + np.exp(-(0.5 + 2 * x)))).astype(float)
    result = LogisticRegression(loss="binary_crossentropy", dtype="float64").solve(x, y)
    pred = result.get_prediction(np.array([0.0, 1.0]))
    frame = pred.summary_frame(alpha=0.05)
    np.testing.assert_allclose(frame["mean_ci_upper"] - frame["mean"], 1.959963984540054 * pred.se_mean,
                               rtol=1e-12)
    assert frame["obs_ci_lower"].isna().all()


def test_bad_arguments_name_the_value():
    x, y = data()
    result = LinearRegression(n_features=2, dtype="float64").solve(x, y)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\), got 1.5"):
        result.get_prediction(x[:2]).summary_frame(alpha=1.5)
    with pytest.raises(ValueError, match=r"sample_weight must hold 2 finite weights > 0.*\[1.0, -1.0\]"):
        result.get_prediction(x[:2], sample_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"n_features=2"):
        result.get_prediction(np.ones((3, 3)))
