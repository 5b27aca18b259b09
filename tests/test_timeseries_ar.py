"""AR(p): exact solve against Stata, forecasts against the recursion and gretl, SGD fit."""
import json
import pathlib

import keras
import numpy as np
import pandas as pd
import pytest

from bwkeras import datasets
from bwkeras.timeseries import AutoRegression, windows

REFDATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "refdata" / "sunspots_ar.json"


@pytest.fixture(scope="module")
def ref():
    if not REFDATA.exists():
        pytest.skip(f"reference data {REFDATA.name} not found")
    return json.loads(REFDATA.read_text())


@pytest.fixture(scope="module")
def sunspots():
    return datasets.sunspots()


def lre(estimate, certified):
    """NIST's log relative error: the number of significant digits that agree."""
    estimate, certified = np.asarray(estimate, float), np.asarray(certified, float)
    with np.errstate(divide="ignore"):
        return -np.log10(np.abs(estimate - certified) / np.abs(certified))


@pytest.mark.parametrize("trend, key", [("c", "ar9_ols_const"), ("n", "ar9_ols_noconst")])
def test_ar9_reproduces_stata(sunspots, ref, trend, key):
    model = AutoRegression(lags=9, trend=trend)
    result = model.solve(sunspots)
    stata = ref[key]
    expected_names = (["c"] if trend == "c" else []) + [f"phi_{i}" for i in range(1, 10)]
    assert list(result.params.index) == expected_names
    # Stata's coefficients are printed to 14 significant digits; LRE >= 8 is the issue's
    # bar (and NIST's for an "average"-difficulty problem in double precision).
    assert lre(result.params, stata["params"]).min() >= 8
    # The model's own weights hold the exact solution (float64), not a rounded copy.
    assert lre(model.params, stata["params"]).min() >= 8
    # rmse is sqrt(SSR / (n - k)) printed to 15 digits; residual dof must be 300 - k.
    assert lre(result.residual_sd, stata["rmse"]) >= 8
    assert result.n_obs == stata["effective_nobs"]
    # gretl's standard errors use the same dof correction but print 6 significant
    # digits: relative agreement to 5e-6 is all those digits allow.
    np.testing.assert_allclose(result.std_errors, stata["bse_gretl"], rtol=5e-6)


def test_ar9_forecast_is_the_recursion(sunspots, ref):
    model = AutoRegression(lags=9, trend="c")
    model.solve(sunspots)
    steps = 30
    forecast = model.forecast(steps)

    c, phi = model.params["c"], model.params[[f"phi_{i}" for i in range(1, 10)]].to_numpy()
    path = list(sunspots.to_numpy())
    by_hand = []
    for _ in range(steps):
        value = c + sum(phi[i - 1] * path[-i] for i in range(1, 10))
        by_hand.append(value)
        path.append(value)
    # The same arithmetic in a different order: agreement to a few ulps of values ~100.
    np.testing.assert_allclose(forecast, by_hand, rtol=1e-12, atol=0)
    # gretl's forecasts printed to 6 decimals: |error| <= 5e-7 plus our 1e-11 relative.
    gretl = ref["ar9_ols_const"]["out_of_sample_forecasts_gretl"]["point"][:steps]
    np.testing.assert_allclose(forecast, gretl, rtol=0, atol=1e-6)
    # An explicit history gives the same origin as the solved series.
    np.testing.assert_array_equal(model.forecast(steps, history=sunspots.to_numpy()), forecast)


def test_keras_predictions_are_the_fitted_values(sunspots, ref):
    model = AutoRegression(lags=9)
    model.solve(sunspots)
    x, y = windows(sunspots, lags=9)
    fitted = model.predict(x, verbose=0)[:, 0]
    assert fitted.dtype == np.float64
    # gretl prints 7 significant digits: relative 1e-6 covers the rounding.
    np.testing.assert_allclose(fitted, ref["ar9_ols_const"]["fitted_values_gretl_1709_2008"],
                               rtol=1e-6)


def test_fit_by_sgd_approaches_the_exact_solution():
    # AR(2) with known parameters; SGD on the windows must land near the OLS optimum.
    rng = np.random.default_rng(3)
    c, phi1, phi2 = 0.5, 0.6, -0.3
    x = np.zeros(2000)
    for t in range(2, len(x)):
        x[t] = c + phi1 * x[t - 1] + phi2 * x[t - 2] + rng.normal(scale=0.5)
    exact = AutoRegression(lags=2).solve(x).params

    keras.utils.set_random_seed(0)
    model = AutoRegression(lags=2)
    # Learning rate 0.02 decaying 10x over the ~620 updates: mini-batch noise shrinks with it.
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=0.02, decay_steps=62, decay_rate=0.8)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="mse")
    xw, yw = windows(x, lags=2)
    model.fit(xw, yw, epochs=20, batch_size=64, verbose=0)
    # The OLS standard errors here are ~0.02-0.03; the SGD iterate must land well inside
    # that (0.01), starting 0.3-0.6 away from every parameter (weights start at zero).
    np.testing.assert_allclose(model.params.to_numpy(), exact.to_numpy(), atol=0.01)


def test_save_load_keeps_params_and_forecast_origin(tmp_path, sunspots):
    model = AutoRegression(lags=9)
    model.solve(sunspots)
    path = tmp_path / "ar.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, AutoRegression)
    x, _ = windows(sunspots, lags=9)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_array_equal(loaded.forecast(12), model.forecast(12))
    pd.testing.assert_series_equal(loaded.params, model.params)


def test_set_params_takes_every_parameter_by_name_or_in_order():
    model = AutoRegression(lags=2)
    model.set_params([0.5, 0.3, -0.2])
    pd.testing.assert_series_equal(
        model.params, pd.Series([0.5, 0.3, -0.2], index=["c", "phi_1", "phi_2"], name="params"))
    model.set_params({"phi_2": 0.1, "c": 1.0, "phi_1": 0.0})
    assert model.params.tolist() == [1.0, 0.0, 0.1]
    model.set_params(model.params * 2)
    assert model.params.tolist() == [2.0, 0.0, 0.2]
    # AR sets all its parameters at once: a mapping that leaves one out is refused.
    with pytest.raises(ValueError, match=r"params lack \['phi_2'\]"):
        model.set_params({"c": 1.0, "phi_1": 0.5})
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['phi_3'\]"):
        model.set_params({"c": 1.0, "phi_1": 0.5, "phi_2": 0.1, "phi_3": 0.0})
    with pytest.raises(ValueError, match=r"params must be 3 values"):
        model.set_params([1.0, 2.0])
    assert model.params.tolist() == [2.0, 0.0, 0.2]


def test_forecast_needs_an_origin():
    model = AutoRegression(lags=3)
    with pytest.raises(ValueError, match="solve"):
        model.forecast(5)
    np.testing.assert_allclose(model.forecast(2, history=[1.0, 2.0, 3.0]), [0.0, 0.0])


@pytest.mark.parametrize("kwargs, match", [
    ({"lags": 0}, r"lags must be an integer >= 1, got 0"),
    ({"lags": -2}, r"lags must be an integer >= 1, got -2"),
    ({"lags": 2.5}, r"lags must be an integer >= 1, got 2.5"),
    ({"lags": 2, "trend": "ct"}, r"unknown trend 'ct'; expected one of \('c', 'n'\)"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AutoRegression(**kwargs)


def test_bad_series():
    model = AutoRegression(lags=3)
    with pytest.raises(ValueError, match=r"found nan at position 4"):
        model.solve([1.0, 2, 3, 4, np.nan, 6, 7, 8, 9])
    with pytest.raises(ValueError, match=r"found 'x' of type str at position 2"):
        model.solve([1, 2, "x", 4, 5, 6, 7, 8])
    with pytest.raises(ValueError, match=r"index 1703"):
        model.solve(pd.Series([1.0, 2, 3, np.inf, 5, 6, 7, 8], index=range(1700, 1708)))
    # 3 lags + 1 target per equation, and 5 equations for 4 parameters and a residual.
    with pytest.raises(ValueError, match=r"series has 7 observations; need at least 8"):
        model.solve(np.arange(7.0))
    with pytest.raises(ValueError, match=r"steps must be an integer >= 1, got 0"):
        model.forecast(0, history=[1.0, 2.0, 3.0])


def test_wrong_input_shape():
    model = AutoRegression(lags=3)
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 3\)"):
        model(np.zeros((2, 3, 2)))
    with pytest.raises(ValueError, match=r"expects 3 values per window, got shape \(2, 4\)"):
        model(np.zeros((2, 4)))
