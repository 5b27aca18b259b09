"""Levenberg-Marquardt behaviour: scale invariance, geodesic acceleration, honest convergence
and stop reasons, several inputs. References are NIST StRD certified values (LRE, NIST's
count of correct digits) and known truth."""
import os
import warnings

import keras
import numpy as np
import pandas as pd
import pytest

from bwkeras.datasets import nist_strd
from bwkeras.regression import ConvergenceWarning, ParametricRegression, lre


def quiet_solve(model, x, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        return model.solve(x, y, **kwargs)


def test_rescaling_a_parameter_by_1e6_gives_the_same_fit():
    # BoxBOD from NIST's first start is the hard case (it needs the acceleration to avoid a
    # plateau); in units where b2 is a million times larger the column-norm scaling makes
    # the path the same: same number of steps, same answer to rounding.
    p = nist_strd("BoxBOD")
    plain = ParametricRegression("b1*(1-exp(-b2*x))", dict(zip(p.param_names, p.starts[0])),
                                 dtype="float64")
    scaled = ParametricRegression("b1*(1-exp(-(b2*1e-6)*x))",
                                  {"b1": p.starts[0][0], "b2": p.starts[0][1] * 1e6}, dtype="float64")
    a, b = quiet_solve(plain, p.x, p.y), quiet_solve(scaled, p.x, p.y)
    assert b.iterations == a.iterations
    # The paths differ only by the rounding of 1e-6 * b2 (relative 1e-16 per step), so the
    # answers agree far inside the certified 11 digits.
    np.testing.assert_allclose(b.params.to_numpy() * [1, 1e-6], a.params.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(b.std_errors.to_numpy() * [1, 1e-6], a.std_errors.to_numpy(), rtol=1e-8)
    assert lre(b.params.to_numpy() * [1, 1e-6], p.certified_params).min() >= 6


def test_geodesic_acceleration_is_what_reaches_boxbod_from_start_1():
    # Without it the first step jumps to b2 ~ 115, where exp(-b2 x) vanishes and the b2
    # column of the Jacobian with it: a plateau. The solver says so and what to try.
    p = nist_strd("BoxBOD")
    model = ParametricRegression("b1*(1-exp(-b2*x))", dict(zip(p.param_names, p.starts[0])),
                                 dtype="float64")
    with pytest.warns(ConvergenceWarning, match="step is below floating-point resolution.*start elsewhere"):
        result = model.solve(p.x, p.y, acceleration=False)
    assert not result.converged and result.stop_reason == "step_too_small"
    assert lre(result.params.to_numpy(), p.certified_params).min() < 1
    model.set_params(p.starts[0])
    assert lre(quiet_solve(model, p.x, p.y).params.to_numpy(), p.certified_params).min() >= 6


def test_acceleration_shortens_slow_valleys():
    # MGH17 from start 1 crawls along a curved valley; the acceleration follows its bend.
    # Both reach the certified values; measured 141 accelerated steps vs about 560 plain.
    p = nist_strd("MGH17")
    fits = []
    for accelerate in (True, False):
        model = ParametricRegression(p.expression, dict(zip(p.param_names, p.starts[0])), dtype="float64")
        fits.append(quiet_solve(model, p.x, p.y, acceleration=accelerate))
        assert lre(fits[-1].params.to_numpy(), p.certified_params).min() >= 6
    assert fits[0].iterations * 2 < fits[1].iterations


def test_stopping_on_the_budget_says_so_and_what_to_try():
    p = nist_strd("MGH10")
    model = ParametricRegression(p.expression, dict(zip(p.param_names, p.starts[0])), dtype="float64")
    with pytest.warns(ConvergenceWarning, match=r"iteration budget.*raise max_iterations"):
        result = model.solve(p.x, p.y, max_iterations=50)
    assert not result.converged and result.stop_reason == "iteration_budget"
    assert result.iterations == 50 and "max_iterations=50" in result.message


def test_data_rounded_to_10_digits_converge_without_a_warning():
    # Residuals that are pure rounding of y (10 significant digits) are not orthogonal to
    # the tangent plane, so the relative offset never gets small; the rounding rule must
    # still call the fit converged, and the answer is right to about 10 digits.
    truth = {"b1": 238.94212918, "b2": 5.5015643181e-4}
    x = np.linspace(77.6, 790.0, 40)
    exact = truth["b1"] * (1 - np.exp(-truth["b2"] * x))
    y = np.array([float(f"{v:.10g}") for v in exact])
    model = ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 500.0, "b2": 1e-4}, dtype="float64")
    result = quiet_solve(model, x, y)
    assert result.converged and result.stop_reason in ("relative_offset", "rounding")
    # y's rounding moves the optimum by ~1e-10 relative (least squares averages it);
    # 1e-8 is two digits of margin.
    np.testing.assert_allclose(result.params.to_numpy(), list(truth.values()), rtol=1e-8)


def test_exact_fit_converges_without_a_warning():
    x = np.linspace(0.0, 4.0, 30)
    y = 2.0 * np.exp(-0.7 * x) + 0.5
    model = ParametricRegression("a*exp(-k*x) + c", {"a": 1.0, "k": 0.1, "c": 0.0}, dtype="float64")
    result = quiet_solve(model, x, y)
    assert result.converged and result.rss < 1e-25
    np.testing.assert_allclose(result.params.to_numpy(), [2.0, 0.7, 0.5], rtol=1e-12)


# -- several inputs --------------------------------------------------------------------------
NELSON = "b1 - b2*x1*exp(-b3*x2)"


def nelson(start=1):
    p = nist_strd("Nelson")
    model = ParametricRegression(NELSON, dict(zip(p.param_names, p.starts[start])),
                                 inputs=("x1", "x2"), dtype="float64")
    return p, model


def test_two_inputs_from_an_array_and_a_dataframe_reach_nist_nelson():
    p, model = nelson()
    result = quiet_solve(model, p.x, np.log(p.y))
    assert lre(result.params.to_numpy(), p.certified_params).min() >= 6
    assert lre(result.std_errors.to_numpy(), p.certified_std_errors).min() >= 4
    # A DataFrame is read by column name, in any order; other columns are ignored.
    frame = pd.DataFrame({"x2": p.x[:, 1], "other": np.arange(len(p.y)), "x1": p.x[:, 0]})
    _, model2 = nelson()
    result2 = quiet_solve(model2, frame, np.log(p.y))
    np.testing.assert_allclose(result2.params.to_numpy(), result.params.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(model2.predict_float64(frame), model.predict_float64(p.x), rtol=1e-14)


def test_two_inputs_survive_save_and_load(tmp_path):
    p, model = nelson()
    quiet_solve(model, p.x, np.log(p.y))
    path = os.path.join(tmp_path, "nelson.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.feature_names == ("x1", "x2") and loaded.get_config()["inputs"] == ["x1", "x2"]
    np.testing.assert_array_equal(loaded.predict_float64(p.x), model.predict_float64(p.x))
    np.testing.assert_array_equal(np.asarray(loaded(p.x)), np.asarray(model(p.x)))


def test_two_inputs_stream_in_batches():
    import tensorflow as tf

    p, model = nelson()
    ds = tf.data.Dataset.from_tensor_slices((p.x, np.log(p.y))).batch(40)
    result = quiet_solve(model, ds, None, verbose=False)
    assert lre(result.params.to_numpy(), p.certified_params).min() >= 6


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"unknown name 'x3'.*\['x1', 'x2'\]"):
        ParametricRegression("b*x1 + x3", {"b": 1.0}, inputs=("x1", "x2"))
    with pytest.raises(ValueError, match="input name 'b' is also a parameter name"):
        ParametricRegression("b*x1", {"b": 1.0}, inputs=("x1", "b"))
    with pytest.raises(ValueError, match=r"input names repeat: \['x1', 'x1'\]"):
        ParametricRegression("b*x1", {"b": 1.0}, inputs=("x1", "x1"))
    with pytest.raises(TypeError, match="inputs must be a list or tuple of names"):
        ParametricRegression("b*x1", {"b": 1.0}, inputs="x1")
    with pytest.raises(ValueError, match="input name 'exp' is reserved"):
        ParametricRegression("b*x1", {"b": 1.0}, inputs=("x1", "exp"))
    p, model = nelson()
    with pytest.raises(ValueError, match=r"lacks the input column\(s\) \['x2'\]"):
        model.solve(pd.DataFrame({"x1": p.x[:, 0]}), np.log(p.y))
    with pytest.raises(ValueError, match=r"n_features=2: expected shape \(n, 2\)"):
        model.solve(p.x[:, 0], np.log(p.y))
    with pytest.raises(TypeError, match="acceleration must be True or False, got 'yes'"):
        model.solve(p.x, np.log(p.y), acceleration="yes")
