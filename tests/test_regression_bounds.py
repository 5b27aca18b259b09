"""Bounds on the nonlinear solves (`solve(..., bounds={"b1": (0, None)})`), checked against
scipy.optimize.least_squares(method="trf") with the same bounds on NIST StRD problems: one
bound that binds and one that does not; standard errors at the solution; bad bounds.

Tolerance against scipy: trf is an interior, reflective method whose answer on these
problems is good to about 1e-8 relative even with every tolerance at 1e-15 (measured on
unbounded Misra1a: trf is 2e-8 from NIST's certified values, bwkeras 1e-10), so the
parameters are compared at rtol 1e-6; the objective, which both minimise, must be no
larger than trf's beyond rounding (1e-12 relative).
"""
import warnings

import numpy as np
import pytest

from bwkeras.datasets import nist_strd
from bwkeras.regression import (ExponentialRegression, ParametricRegression, lre)
from bwkeras.regression.expression import Expression

optimize = pytest.importorskip("scipy.optimize")

RTOL_TRF = 1e-6     # trf's own accuracy on these problems (see the module docstring)
RSS_ROUNDING = 1e-12


def bwkeras_fit(problem, start, bounds):
    model = ParametricRegression(problem.expression, dict(zip(problem.param_names, start)),
                                 dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("error")       # a bounded solve converges without warnings
        return model.solve(problem.x, problem.y, bounds=bounds)


def trf_fit(problem, start, bounds):
    expr = Expression(problem.expression, problem.param_names)
    names = problem.param_names
    lo = [bounds.get(n, (None, None))[0] for n in names]
    hi = [bounds.get(n, (None, None))[1] for n in names]
    lo = [-np.inf if v is None else v for v in lo]
    hi = [np.inf if v is None else v for v in hi]

    def residual(theta):
        return np.asarray(expr.evaluate(problem.x, dict(zip(names, theta)), backend="numpy")) - problem.y

    return optimize.least_squares(residual, np.asarray(start, dtype=float), bounds=(lo, hi),
                                  method="trf", x_scale="jac", ftol=1e-15, xtol=1e-15,
                                  gtol=1e-15, max_nfev=100000)


@pytest.mark.parametrize("name, start, bounds, active", [
    # Misra1a's certified b1 is 238.9: an upper bound of 200 binds.
    ("Misra1a", [150.0, 1e-4], {"b1": (None, 200.0)}, {"b1": "upper"}),
    # BoxBOD's certified b2 is 0.547: an upper bound of 0.4 binds.
    ("BoxBOD", [100.0, 0.3], {"b1": (0.0, None), "b2": (0.1, 0.4)}, {"b2": "upper"}),
    # MGH09 from start 2: b3 >= 0.15 binds (certified 0.123), b1 <= 0.3 does not.
    ("MGH09", None, {"b1": (0.0, 0.3), "b3": (0.15, None)}, {"b3": "lower"}),
])
def test_a_binding_bound_matches_scipy_trf(name, start, bounds, active):
    problem = nist_strd(name)
    start = problem.starts[1] if start is None else start
    result = bwkeras_fit(problem, start, bounds)
    ref = trf_fit(problem, start, bounds)
    assert ref.status > 0, ref.message
    assert result.converged and result.active_bounds == active
    np.testing.assert_allclose(result.params.to_numpy(), ref.x, rtol=RTOL_TRF)
    assert result.rss <= 2 * ref.cost * (1 + RSS_ROUNDING)
    for key, side in active.items():   # held exactly on the bound, as trf's active_mask says
        j = problem.param_names.index(key)
        assert result.params[key] == bounds[key][0 if side == "lower" else 1]
        assert ref.active_mask[j] == (-1 if side == "lower" else 1)
        assert np.isnan(result.bse[key])
    # the note: in the message, in summary()'s "bound" column, in str(result)
    key, side = next(iter(active.items()))
    assert f"{key} at its {side} bound" in result.message
    assert result.summary()["bound"][key].endswith(f"active: {side}")
    assert f"bound active: {key}" in str(result)
    free = [n for n in problem.param_names if n not in active]
    assert np.isfinite(result.bse[free]).all()
    assert result.to_dict()["active_bounds"] == active


def test_an_inactive_bound_changes_nothing_and_reaches_nist():
    """MGH09 from NIST's first start (a hard start) inside 0 <= b1 <= 30: the certified
    answer, parameters and standard errors, as the unbounded solve reaches (the issue's bar,
    LRE >= 6 and >= 4), and scipy trf's answer within its accuracy."""
    problem = nist_strd("MGH09")
    start = problem.starts[0]
    bounds = {"b1": (0.0, 30.0)}
    result = bwkeras_fit(problem, start, bounds)
    assert result.converged and result.active_bounds == {}
    assert lre(result.params.to_numpy(), problem.certified_params).min() >= 6
    assert lre(result.bse.to_numpy(), problem.certified_std_errors).min() >= 4
    ref = trf_fit(problem, start, bounds)
    np.testing.assert_allclose(result.params.to_numpy(), ref.x, rtol=RTOL_TRF)
    assert result.summary()["bound"].tolist() == ["[0, 30]", "", "", ""]


def test_open_bounds_are_the_unbounded_solve_exactly():
    problem = nist_strd("BoxBOD")
    free = bwkeras_fit(problem, problem.starts[0], None)
    open_ = bwkeras_fit(problem, problem.starts[0], {"b1": (None, None)})
    np.testing.assert_array_equal(open_.params.to_numpy(), free.params.to_numpy())
    np.testing.assert_array_equal(open_.bse.to_numpy(), free.bse.to_numpy())
    assert open_.iterations == free.iterations and open_.active_bounds == {}


def test_standard_errors_with_an_active_bound_are_those_of_the_parameter_fixed():
    """b1 held at 200 on Misra1a: b2 and its standard error are those of the one-parameter
    model with b1 = 200 fixed, the variance scaled from that fit's n - 1 degrees of freedom
    to this one's n - 2 (both exact float64 solves of a well-conditioned problem: 1e-9)."""
    problem = nist_strd("Misra1a")
    result = bwkeras_fit(problem, [150.0, 1e-4], {"b1": (None, 200.0)})
    fixed = ParametricRegression("200*(1-exp(-b2*x))", {"b2": 1e-4}, dtype="float64")
    reduced = fixed.solve(problem.x, problem.y)
    n = len(problem.y)
    assert result.params["b2"] == pytest.approx(reduced.params["b2"], rel=1e-9)
    assert result.rss == pytest.approx(reduced.rss, rel=1e-9)
    assert result.df_resid == n - 2
    assert result.bse["b2"] == pytest.approx(reduced.bse["b2"] * np.sqrt((n - 1) / (n - 2)), rel=1e-9)
    assert np.isnan(result.cov_params().loc["b1"]).all()


def test_bounds_on_a_named_family_and_on_streamed_batches():
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 3.0, 80)
    y = 2.0 * np.exp(0.5 * x) + rng.normal(scale=0.05, size=80)
    model = ExponentialRegression(dtype="float64")
    result = model.solve(x, y, start="guess", bounds={"r": (None, 0.45)})
    assert result.active_bounds == {"r": "upper"} and result.params["r"] == 0.45
    assert model.params["r"] == 0.45                 # written into the weights
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 80, 16)]
    streamed = ExponentialRegression(dtype="float64").solve(
        batches, start={"N": 1.0, "r": 0.0}, bounds={"r": (None, 0.45)}, verbose=False)
    # the same optimum from another start, summed over blocks (rounding of a 2-parameter fit)
    np.testing.assert_allclose(streamed.params.to_numpy(), result.params.to_numpy(), rtol=1e-9)
    assert streamed.active_bounds == {"r": "upper"}


@pytest.mark.parametrize("bounds, error, match", [
    ({"b1": (300.0, 200.0)}, ValueError, r"bounds\['b1'\] = \(300.0, 200.0\).*lower bound 300 exceeds the upper bound 200"),
    ({"b9": (0.0, None)}, ValueError, r"unknown parameter 'b9'.*\['b1', 'b2'\]"),
    ({"b1": (0.0, 100.0)}, ValueError, r"starting value b1=150 lies outside its bounds \[0, 100\]"),
    ({"b2": (1e-3, None)}, ValueError, r"starting value b2=0.0001 lies outside"),
    ({"b1": (float("nan"), None)}, ValueError, r"lower bound of 'b1' is NaN"),
    ({"b1": ("0", None)}, TypeError, r"lower bound of 'b1' must be a number or None, got '0'"),
    ({"b1": (0.0, True)}, TypeError, r"upper bound of 'b1' must be a number or None, got True"),
    ({"b1": 0.0}, TypeError, r"bounds\['b1'\] must be a pair \(lower, upper\).*got 0.0"),
    ([("b1", 0.0, 1.0)], TypeError, r"bounds must be a dict name -> \(lower, upper\), got \["),
])
def test_bad_bounds_name_the_value(bounds, error, match):
    problem = nist_strd("Misra1a")
    model = ParametricRegression(problem.expression, {"b1": 150.0, "b2": 1e-4}, dtype="float64")
    with pytest.raises(error, match=match):
        model.solve(problem.x, problem.y, bounds=bounds)
    assert model.params.tolist() == [150.0, 1e-4]    # nothing was written
