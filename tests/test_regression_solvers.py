"""Exact and second-order solves against known truth, statsmodels and numpy."""
import warnings

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from bwkeras.data import synthetic
from bwkeras.regression import (ConvergenceWarning, ExponentialRegression, FitResult,
                                LinearRegression, LogisticRegression, ParametricRegression,
                                PolynomialRegression, least_squares)
from bwkeras.regression.result import Solution

sm = pytest.importorskip("statsmodels.api")

# Every family with a known-truth generator: (model factory, data, solve options).
FAMILIES = {
    "linear": (lambda: LinearRegression(dtype="float64"),
               lambda noise: synthetic.linear(200, m=1.7, b=-0.4, noise=noise), {}),
    "linear_k3": (lambda: LinearRegression(n_features=3, dtype="float64"),
                  lambda noise: synthetic.linear(200, m=[1.0, -2.0, 0.5], b=3.0, noise=noise), {}),
    "polynomial": (lambda: PolynomialRegression(4, dtype="float64"),
                   lambda noise: synthetic.polynomial(200, coefficients=[1.0, -2.0, 0.5, 0.3, -0.1],
                                                      noise=noise), {}),
    "exponential": (lambda: ExponentialRegression(dtype="float64"),
                    lambda noise: synthetic.exponential(200, N=2.5, r=0.7, noise=noise),
                    {"start": "guess"}),
    "logistic": (lambda: LogisticRegression(dtype="float64"),
                 lambda noise: synthetic.logistic(200, a=0.5, b=1.5, noise=noise / 10),
                 {"start": "guess"}),
    "logistic_k2": (lambda: LogisticRegression(2, dtype="float64"),
                    lambda noise: synthetic.logistic(200, a=-0.3, b=[1.0, 2.0], noise=noise / 10), {}),
    "parametric": (lambda: ParametricRegression("b1*x/(b2+x)", {"b1": 1.0, "b2": 1.0}, dtype="float64"),
                   lambda noise: synthetic.parametric("b1*x/(b2+x)", {"b1": 3.0, "b2": 0.4},
                                                      n=200, noise=noise, x_range=(0.05, 5.0)), {}),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_noise_free_data_recover_the_truth(family):
    make, data, opts = FAMILIES[family]
    x, y, truth = data(0.0)
    model = make()
    result = model.solve(x, y, **opts)
    assert result.converged
    assert list(result.params.index) == list(truth)
    # Exact data: the optimum is the truth, found to far better than the 1e-6.
    np.testing.assert_allclose(result.params[list(truth)].to_numpy(), list(truth.values()),
                               rtol=1e-6, atol=1e-9)
    assert model.params.to_dict() == pytest.approx(truth, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_noisy_data_put_the_truth_inside_three_standard_errors(family):
    make, data, opts = FAMILIES[family]
    x, y, truth = data(0.2)
    result = make().solve(x, y, **opts)
    assert result.converged
    z = (result.params - pd.Series(truth)) / result.std_errors
    # With correct standard errors each |z| exceeds 3 with probability 0.27%; the seeds are
    # fixed, so this is deterministic, and a wrong covariance (e.g. off by sqrt(n)) fails.
    assert (z.abs() < 3).all(), z.to_dict()
    # The residual SD estimates the noise SD (logistic noise is 0.02).
    sd = 0.02 if family.startswith("logistic") else 0.2
    assert result.residual_sd == pytest.approx(sd, rel=0.15)


def test_bernoulli_logistic_truth_within_three_standard_errors():
    x, y, truth = synthetic.logistic(4000, a=-0.5, b=[1.0, -2.0], outcome="bernoulli", seed=7)
    assert set(np.unique(y)) == {0.0, 1.0} and x.shape == (4000, 2)
    result = LogisticRegression(2, loss="binary_crossentropy", dtype="float64").solve(x, y)
    z = (result.params - pd.Series(truth)) / result.std_errors
    assert (z.abs() < 3).all(), z.to_dict()


def test_ols_matches_statsmodels_including_the_summary():
    x, y, _ = synthetic.linear(300, m=[0.5, -1.0, 2.0], b=1.0, noise=0.5, seed=3)
    result = LinearRegression(3, dtype="float64").solve(x, y)
    ref = sm.OLS(y, sm.add_constant(x)).fit()
    # Two float64 least-squares solvers on a well-conditioned design: ~1e-12 agreement.
    np.testing.assert_allclose(result.params.to_numpy(), ref.params, rtol=1e-10)
    np.testing.assert_allclose(result.std_errors.to_numpy(), ref.bse, rtol=1e-10)
    np.testing.assert_allclose(result.cov_params.to_numpy(), ref.cov_params(), rtol=1e-9)
    assert result.rss == pytest.approx(ref.ssr, rel=1e-12)
    assert result.r_squared == pytest.approx(ref.rsquared, rel=1e-12)
    assert result.df_resid == ref.df_resid
    table = result.summary()
    assert list(table.index) == ["b", "m_1", "m_2", "m_3"]
    assert list(table.columns) == ["coef", "std err", "t", "P>|t|", "[0.025", "0.975]"]
    np.testing.assert_allclose(table["t"], ref.tvalues, rtol=1e-9)
    # p-values from the incomplete beta function against scipy's t distribution.
    np.testing.assert_allclose(table["P>|t|"], ref.pvalues, rtol=1e-6, atol=1e-300)
    assert isinstance(result, FitResult) and "P>|t|" in str(result)


def test_logit_matches_statsmodels():
    x, y, _ = synthetic.logistic(500, a=0.3, b=[0.8, -0.6], outcome="bernoulli", seed=11)
    result = LogisticRegression(2, loss="binary_crossentropy", dtype="float64").solve(x, y)
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    # Both run Newton's method to convergence on the same likelihood.
    np.testing.assert_allclose(result.params.to_numpy(), ref.params, rtol=1e-8)
    np.testing.assert_allclose(result.std_errors.to_numpy(), ref.bse, rtol=1e-8)
    assert result.loglike == pytest.approx(ref.llf, rel=1e-12)
    assert result.r_squared == pytest.approx(ref.prsquared, rel=1e-9)


def test_nonlinear_matches_scipy_least_squares():
    scipy_opt = pytest.importorskip("scipy.optimize")
    x, y, _ = synthetic.exponential(150, N=1.5, r=-0.8, noise=0.05, seed=5)
    result = ExponentialRegression(dtype="float64").solve(x, y, start="guess")
    ref = scipy_opt.least_squares(lambda t: t[0] * np.exp(t[1] * x) - y, [1.0, 0.0],
                                  xtol=1e-15, ftol=1e-15, gtol=1e-15)
    # MINPACK-style trust region vs our LM, both to their tolerances: ~1e-9 agreement.
    np.testing.assert_allclose(result.params.to_numpy(), ref.x, rtol=1e-8)
    assert result.rss == pytest.approx(2 * ref.cost, rel=1e-12)


def test_streaming_equals_in_memory_for_linear_and_nonlinear():
    x, y, _ = synthetic.polynomial(5000, coefficients=[0.5, 1.0, -0.25], noise=0.1, seed=2)
    whole = PolynomialRegression(2, dtype="float64").solve(x, y)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(333)
    streamed = PolynomialRegression(2, dtype="float64").solve(ds)
    one_shot = PolynomialRegression(2, dtype="float64").solve(
        (x[i:i + 700], y[i:i + 700]) for i in range(0, len(y), 700))
    blocks = PolynomialRegression(2, dtype="float64").solve(x, y, batch_size=64)
    for other in (streamed, one_shot, blocks):
        # Same rows, other blocking: rounding-level differences only (~1e-14 relative).
        np.testing.assert_allclose(other.params, whole.params, rtol=1e-11)
        np.testing.assert_allclose(other.std_errors, whole.std_errors, rtol=1e-10)
        assert other.rss == pytest.approx(whole.rss, rel=1e-11) and other.n_obs == 5000

    x, y, _ = synthetic.exponential(3000, N=2.0, r=0.4, noise=0.05, seed=4)
    a = ExponentialRegression(dtype="float64").solve(x, y, start="guess")
    b = ExponentialRegression(dtype="float64").solve(
        [(x[i:i + 512], y[i:i + 512]) for i in range(0, len(y), 512)], start="guess")
    np.testing.assert_allclose(b.params, a.params, rtol=1e-9)


def test_least_squares_is_reusable_for_a_lag_matrix():
    # How AR(p) reuses the solver: a design of lags and names c, phi_1.. phi_p.
    rng = np.random.default_rng(0)
    e = rng.normal(size=600)
    z = np.zeros(600)
    for t in range(2, 600):
        z[t] = 0.3 + 0.5 * z[t - 1] - 0.2 * z[t - 2] + e[t]
    X = np.column_stack([z[1:-1], z[:-2]])
    result = least_squares(X, z[2:], param_names=["c", "phi_1", "phi_2"])
    ref = np.linalg.lstsq(np.column_stack([np.ones(len(X)), X]), z[2:], rcond=None)[0]
    np.testing.assert_allclose(result.params.to_numpy(), ref, rtol=1e-10)
    assert list(result.params.index) == ["c", "phi_1", "phi_2"]


def test_rank_deficient_design_is_reported_not_solved():
    x, y, _ = synthetic.linear(50, m=[1.0, 2.0], seed=1)
    dup = np.column_stack([x[:, 0], x[:, 1], x[:, 1]])
    with pytest.raises(ValueError, match=r"rank-deficient.*\['m_2', 'm_3'\]"):
        LinearRegression(3).solve(dup, y)
    with pytest.raises(ValueError, match=r"rank-deficient.*'m_2'"):
        LinearRegression(2).solve(np.column_stack([x[:, 0], np.full(50, 3.0)]), y)
    # Non-identifiable nonlinear parameters (only their product matters).
    model = ParametricRegression("a*b*x", {"a": 1.0, "b": 2.0}, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # the error, not a warning
        with pytest.raises(ValueError, match=r"rank-deficient.*\['a', 'b'\]"):
            model.solve(x[:, 0], y)


def test_levenberg_marquardt_that_does_not_converge_says_so():
    x, y, _ = synthetic.parametric("b1*(1-exp(-b2*x))", {"b1": 240.0, "b2": 5.5e-4}, n=40,
                                   noise=0.1, x_range=(70.0, 800.0), seed=2)
    model = ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 500.0, "b2": 1e-4}, dtype="float64")
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        result = model.solve(x, y, max_iterations=2)
    assert not result.converged and result.iterations == 2
    assert "max_iterations" in result.message
    # Given room it converges from the same start.
    model.set_params({"b1": 500.0, "b2": 1e-4})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        assert model.solve(x, y).converged


def test_fit_result_is_plain_data():
    x, y, _ = synthetic.linear(30, noise=0.1)
    result = LinearRegression(dtype="float64").solve(x, y)
    d = result.to_dict()
    assert set(d["params"]) == {"b", "m"} and d["method"] == "qr" and d["converged"] is True
    assert d["n_obs"] == 30 and d["df_resid"] == 28
    assert result.residual_sd == pytest.approx(np.sqrt(result.rss / 28))


def test_solution_travels_as_one_vector_and_reads_back_whole():
    cov = np.array([[2.0, 0.5], [0.5, 1.0]])
    solution = Solution(params=np.array([1.5, -2.0]), cov=cov, rss=3.0, r_squared=0.9,
                        residual_sd=0.5, loglike=-7.25, iterations=12, converged=False)
    packed = solution.pack()
    assert packed.dtype == np.float64 and packed.shape == (2 + 4 + 7,)
    back = Solution.unpack(packed, 2)
    np.testing.assert_array_equal(back.params, solution.params)
    np.testing.assert_array_equal(back.cov, cov)
    assert (back.rss, back.r_squared, back.residual_sd, back.loglike) == (3.0, 0.9, 0.5, -7.25)
    assert back.iterations == 12 and back.converged is False
    result = back.fit_result(["a", "b"], n_obs=10, method="fisher-scoring", message="m")
    np.testing.assert_allclose(result.std_errors, np.sqrt([2.0, 1.0]))
    assert result.df_resid == 8 and result.loglike == -7.25 and result.message == "m"
    # Least squares carries no likelihood: NaN in the vector, None in the result.
    plain = Solution(params=np.zeros(1), cov=np.ones((1, 1)), rss=1.0, r_squared=0.0,
                     residual_sd=1.0)
    assert Solution.unpack(plain.pack(), 1).fit_result(["a"], 3, "qr").loglike is None
    with pytest.raises(ValueError, match=r"a packed Solution of 3 parameters has 19 values"):
        Solution.unpack(packed, 3)
