"""Long exact solves report progress: rows read per pass over streamed data."""
import numpy as np
import pytest

from bwkeras.regression import ExponentialRegression, PolynomialRegression


def batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_streamed_linear_solve_reports_rows(capsys):
    x = np.linspace(0, 1, 5000)
    y = 1 + 2 * x
    PolynomialRegression(degree=1, dtype="float64").solve(batches(x, y, 1000))
    err = capsys.readouterr().err
    assert "least squares (QR): 5,000 rows" in err
    PolynomialRegression(degree=1, dtype="float64").solve(x, y)  # arrays: quick, quiet
    assert capsys.readouterr().err == ""
    PolynomialRegression(degree=1, dtype="float64").solve(batches(x, y, 1000), verbose=False)
    assert capsys.readouterr().err == ""


def test_streamed_nonlinear_solve_reports_each_pass(capsys):
    x = np.linspace(0, 2, 400)
    y = 3 * np.exp(0.5 * x)
    model = ExponentialRegression(dtype="float64")
    model.set_params({"N": 2.0, "r": 0.3})
    result = model.solve(batches(x, y, 100))
    assert result.converged
    err = capsys.readouterr().err
    # Several passes over the 400 rows: one per LM evaluation.
    assert "Levenberg-Marquardt: 400 rows" in err and "Levenberg-Marquardt pass 2: 400 rows" in err


def test_verbose_must_be_a_known_value():
    with pytest.raises(ValueError, match="verbose must be True, False or 'auto', got 'yes'"):
        PolynomialRegression(degree=1).solve(np.arange(5.0), np.arange(5.0), verbose="yes")
