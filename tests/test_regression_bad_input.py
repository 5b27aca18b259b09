"""Bad input: each case raises ValueError or TypeError naming the value and what is allowed."""
import numpy as np
import pytest
import tensorflow as tf

from bwkeras.data import synthetic
from bwkeras.regression import (ExponentialRegression, LinearRegression, LogisticRegression,
                                ParametricRegression, PolynomialRegression, capacity_curve,
                                least_squares)

X = np.linspace(0.0, 1.0, 20)
Y = 2.0 * X + 1.0


def every_family():
    return [LinearRegression(), PolynomialRegression(2), ExponentialRegression(),
            LogisticRegression(), ParametricRegression("b*x", {"b": 1.0})]


@pytest.mark.parametrize("model", every_family(), ids=lambda m: type(m).__name__)
def test_non_finite_mismatched_and_empty_data(model):
    bad = Y.copy()
    bad[7] = np.nan
    with pytest.raises(ValueError, match=r"y contains NaN or inf \(first at row 7"):
        model.solve(X, bad)
    badx = X.copy()
    badx[4] = np.inf
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 4: inf"):
        model.solve(badx, Y)
    with pytest.raises(ValueError, match="different lengths: 20 rows and 19 rows"):
        model.solve(X, Y[:-1])
    with pytest.raises(ValueError, match="empty"):
        model.solve(X[:0], Y[:0])
    with pytest.raises(ValueError, match="empty"):  # a stream with no batches
        model.solve(tf.data.Dataset.from_tensor_slices((X[:0], Y[:0])).batch(5))
    with pytest.raises(TypeError, match="must hold real numbers"):
        model.solve(np.array(["a"] * 20), Y)
    with pytest.raises(TypeError, match="y is missing"):
        model.solve(X)


def test_streamed_data_are_checked_batch_by_batch():
    model = LinearRegression()
    ys = Y.copy()
    ys[13] = np.nan
    ds = tf.data.Dataset.from_tensor_slices((X, ys)).batch(5)
    with pytest.raises(ValueError, match="row 13"):  # row counted over the whole stream
        model.solve(ds)
    with pytest.raises(ValueError, match="batch the data set first"):
        model.solve(tf.data.Dataset.from_tensor_slices((X, Y)))
    with pytest.raises(ValueError, match=r"not an \(x, y\) pair"):
        model.solve([(X, Y, Y, Y)])  # (x, y) or (x, y, weight) only
    with pytest.raises(ValueError, match="batch 1: x and y have different lengths"):
        model.solve([(X, Y), (X[:3], Y[:4])])
    with pytest.raises(TypeError, match="one-shot iterator"):
        ExponentialRegression().solve((b for b in [(X, Y)]))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.solve(X, Y, batch_size=0)
    with pytest.raises(ValueError, match="distributed must be None, True or False"):
        model.solve(X, Y, distributed="yes")


def test_degree_must_be_a_non_negative_int():
    for bad in (-1, 2.5, "3", True, None):
        with pytest.raises(ValueError, match=r"degree must be an integer >= 0, got"):
            PolynomialRegression(bad)
    assert PolynomialRegression(0).param_names == ["a_0"]


def test_n_features_must_match_x():
    with pytest.raises(ValueError, match=r"x has 2 feature column\(s\) \(shape \(20, 2\)\) but LinearRegression has n_features=3"):
        LinearRegression(n_features=3).solve(np.ones((20, 2)), Y)
    with pytest.raises(ValueError, match=r"n_features=2: expected shape \(n, 2\)"):
        LogisticRegression(n_features=2).solve(X, Y / 4)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_features must be an integer >= 1"):
            LinearRegression(n_features=bad)


def test_constructor_arguments():
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float64'\), got 'float16'"):
        LinearRegression(dtype="float16")
    with pytest.raises(ValueError, match=r"unknown loss 'hinge'; expected one of \('squared', 'binary_crossentropy'\)"):
        LogisticRegression(loss="hinge")
    assert LinearRegression(dtype=np.float64).dtype == "float64"


def test_exponential_guess_needs_positive_y():
    y = 2.0 * np.exp(0.5 * X)
    y[3] = -1.0
    with pytest.raises(ValueError, match=r"takes? log\(y\)|fits log\(y\).*got y = -1.0"):
        ExponentialRegression().solve(X, y, start="guess")
    y[3] = 0.0
    with pytest.raises(ValueError, match="got y = 0.0"):
        ExponentialRegression().solve(X, y, start="guess")


def test_bernoulli_outcomes_must_be_in_0_1():
    with pytest.raises(ValueError, match=r"outcomes in \[0, 1\].*got y = 2.0 at row 0"):
        LogisticRegression(loss="binary_crossentropy").solve(X, np.full(20, 2.0))


def test_singular_design_named():
    with pytest.raises(ValueError, match=r"rank-deficient.*\['m_1', 'm_2'\]"):
        LinearRegression(2).solve(np.column_stack([X, X]), Y)
    with pytest.raises(ValueError, match="3 parameters"):
        PolynomialRegression(2).solve(X[:2], Y[:2])
    with pytest.raises(ValueError, match="linearly dependent"):
        least_squares(np.column_stack([X, 2 * X]), Y, param_names=["c", "u", "v"])
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        least_squares(X, Y, param_names=["c", "u", "v"])
    with pytest.raises(ValueError, match="repeat"):
        least_squares(X, Y, param_names=["c", "c"])


def test_solver_options():
    model = ParametricRegression("b*x", {"b": 1.0})
    with pytest.raises(ValueError, match="start must be 'current', 'guess' or a dict"):
        model.solve(X, Y, start="random")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['c'\]"):
        model.solve(X, Y, start={"c": 1.0})
    with pytest.raises(ValueError, match="no data-driven initial guess"):
        model.solve(X, Y, start="guess")
    with pytest.raises(ValueError, match="max_iterations must be an integer >= 1 or None, got 0"):
        model.solve(X, Y, max_iterations=0)
    with pytest.raises(ValueError, match=r"tolerance must be a number in \(0, 1\), got 2"):
        model.solve(X, Y, tolerance=2)
    with pytest.raises(ValueError, match="not finite at the starting values"):
        ParametricRegression("log(b*x)", {"b": -1.0}, dtype="float64").solve(X + 1, Y)
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['z'\]"):
        model.set_params({"z": 1.0})
    with pytest.raises(ValueError, match="must be finite"):
        model.set_params({"b": float("inf")})


def test_capacity_curve_arguments():
    x, y, _ = synthetic.polynomial(30, seed=1)
    with pytest.raises(ValueError, match="validation must be a fraction in"):
        capacity_curve(x, y, [1], validation=1.5)
    with pytest.raises(ValueError, match="degree must be an integer >= 0"):
        capacity_curve(x, y, [1, -2])
    with pytest.raises(ValueError, match="degrees is empty"):
        capacity_curve(x, y, [])
    with pytest.raises(ValueError, match="degree 40 has 41 parameters"):
        capacity_curve(x, y, [40])
    with pytest.raises(ValueError, match="different lengths"):
        capacity_curve(x, y[:-1], [1])


def test_synthetic_generators_check_their_arguments():
    with pytest.raises(ValueError, match="n must be an integer >= 1, got 0"):
        synthetic.linear(0)
    with pytest.raises(ValueError, match="noise must be a finite number >= 0"):
        synthetic.polynomial(10, noise=-1.0)
    with pytest.raises(ValueError, match="low < high"):
        synthetic.exponential(10, x_range=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"unknown outcome 'counts'; expected one of \('probability', 'bernoulli'\)"):
        synthetic.logistic(10, outcome="counts")
    with pytest.raises(ValueError, match="noise must be 0 for Bernoulli"):
        synthetic.logistic(10, noise=0.1, outcome="bernoulli")
    with pytest.raises(ValueError, match="unknown name 'q'"):
        synthetic.parametric("b*q", {"b": 1.0})
    with pytest.raises(ValueError, match="not finite on x_range"):
        synthetic.parametric("log(b*x)", {"b": -1.0})
