"""The library at its edges (the hardening issue's list): sizes checked before anything is
allocated, overflow and non-finite constants refused at parse time naming the term, badly
scaled data refused before LAPACK sees it, formulas ASCII only and without comments."""
import math
import tracemalloc

import numpy as np
import pytest

from bwkeras.regression import (ExponentialRegression, LogisticRegression, ParametricRegression,
                                PolynomialRegression)
from bwkeras.regression.expression import Expression
from bwkeras.timeseries import AutoRegression


# ---- sizes before allocation ------------------------------------------------------------

def test_a_huge_degree_is_refused_at_construction():
    with pytest.raises(ValueError, match=r"degree must be at most 10000 .*, got 1000000"):
        PolynomialRegression(10 ** 6)


def test_too_few_rows_for_the_parameters_is_said_before_allocating():
    x = np.arange(20.0)
    with pytest.raises(ValueError, match="20 observation\\(s\\) cannot determine 51 parameters"):
        PolynomialRegression(50).solve(x, x)
    model = PolynomialRegression(5000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="20 observation\\(s\\) cannot determine 5001 "
                                             "parameters"):
            model.solve(x, x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the R factor alone would be (p+1)^2 float64 = 200 MB; refused with a tenth of that
    assert peak < (5001 + 1) ** 2 * 8 / 10


def test_the_streamed_solve_still_counts_rows_after_reading_them():
    x = np.arange(20.0)
    with pytest.raises(ValueError, match="20 observation\\(s\\) cannot determine 51 parameters"):
        PolynomialRegression(50).solve([(x[:10], x[:10]), (x[10:], x[10:])])


def test_huge_lags_are_refused_at_construction_and_long_ones_by_the_series():
    with pytest.raises(ValueError, match=r"lags must be at most 10000 .*, got 1000000000"):
        AutoRegression(lags=10 ** 9)
    with pytest.raises(ValueError, match="309 observations; need at least 10002"):
        AutoRegression(lags=5000).solve(np.sin(np.arange(309.0)))


# ---- formulas -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, names, message", [
    ("b*x*9**9**9**9", ["b"], "term '9\\*\\*9\\*\\*9' of expression .* has no finite float64 value"),
    ("b*x + " + "7" * 400, ["b"], "constant '7777.*' .* is not a finite float64 number"),
    ("b*x*1e999", ["b"], "constant '1e999' .* is not a finite float64 number"),
    ("b*x*exp(1000)", ["b"], "term 'exp\\(1000\\)' .* has no finite float64 value"),
    ("b*x*log(0)", ["b"], "term 'log\\(0\\)'.*math domain error"),
    ("b*x*(-8)**0.5", ["b"], "term '\\(-8\\)\\*\\*0.5'.*math domain error"),
    ("b*x/0", ["b"], "term 'b\\*x/0' .* divides by zero"),
    ("b*x/(1-1)", ["b"], "divides by zero"),
    ("b*x*1e200*1e200*0 + b", ["b"], None),  # data-dependent: (b*x*1e200)*1e200, allowed
    ("b*\U0001d431", ["b"], "holds the character '\\\\U0001d431' \\(U\\+1D431\\) at position 2"),
    ("\uff42*x", ["\uff42"], "parameter name .* holds the character '\\\\uff42' \\(U\\+FF42\\)"),
    ("b*x # + c*x**2", ["b"], "holds a comment \\('#' at position 4\\)"),
    ("b*x\ud800", ["b"], "holds a lone surrogate '\\\\ud800' \\(U\\+D800\\) at position 3"),
    ("b*x", ["b\udc00"], "lone surrogate"),
])
def test_a_formula_is_refused_naming_the_term(text, names, message):
    if message is None:
        Expression(text, names)  # the control: accepted
        return
    with pytest.raises(ValueError, match=message):
        Expression(text, names)
    with pytest.raises(ValueError):
        ParametricRegression(text, names)


def test_nfkc_folding_can_no_longer_hide_a_name():
    """Python folds identifiers by NFKC: the outside reference shows ast.parse would read
    the mathematical bold x as x, which is why non-ASCII is refused."""
    import ast
    import unicodedata

    assert unicodedata.normalize("NFKC", "\U0001d431") == "x"
    assert ast.parse("b*\U0001d431", mode="eval").body.right.id == "x"


def test_constants_at_the_float64_edge_evaluate_like_numpy():
    x = np.array([0.25, 0.5, 1.0])
    e = Expression("b*x*1e308 + 2**1023*0", ["b"])
    np.testing.assert_array_equal(e.evaluate(x, {"b": 1.0}, backend="numpy"), x * 1e308)
    assert math.isfinite(float(Expression("b*x + 2**1023", ["b"]).evaluate(
        x, {"b": 0.0}, backend="numpy")[0]))


def test_a_400_digit_start_value_is_a_value_error():
    model = ParametricRegression("b*x", ["b"])
    with pytest.raises(ValueError, match="too large for float64"):
        model.set_params({"b": 10 ** 400})
    with pytest.raises(ValueError, match="too large for float64"):
        model.solve(np.arange(5.0), np.arange(5.0), start={"b": 10 ** 400})


# ---- badly scaled data: a message, no LAPACK noise ----------------------------------------

@pytest.mark.parametrize("family", [ExponentialRegression, LogisticRegression])
@pytest.mark.parametrize("start", ["current", "guess"])
def test_badly_scaled_x_is_refused_before_lapack(capfd, family, start):
    x = np.linspace(0.0, 1.0, 50)
    y = (x > 0.5).astype(float) if family is LogisticRegression else 2.0 * np.exp(0.5 * x)
    with pytest.raises(ValueError, match="x reaches 1e\\+300: .* rescale x"):
        family().solve(x * 1e300, y, start=start)
    err = capfd.readouterr().err
    assert "DLASCL" not in err and "illegal value" not in err


@pytest.mark.parametrize("family, scaled", [(ExponentialRegression, "x"), (ExponentialRegression, "y"),
                                            (LogisticRegression, "x")])  # logistic y: 0/1 only
@pytest.mark.parametrize("start", ["current", "guess"])
def test_a_streamed_badly_scaled_solve_is_refused_before_lapack(capfd, family, start, scaled):
    """Batches are checked as they are read: the bad batch (here the second) is named and
    LAPACK, which prints its complaint straight to stderr, never sees it."""
    x = np.linspace(0.0, 1.0, 50)
    y = (x > 0.5).astype(float) if family is LogisticRegression else 2.0 * np.exp(0.5 * x)
    if scaled == "x":
        x = np.concatenate([x[:25], x[25:] * 1e300])
    else:
        y = np.concatenate([y[:25], y[25:] * 1e300])
    capfd.readouterr()
    with pytest.raises(ValueError, match=f"{scaled} in batch 1 reaches [0-9.]+e\\+300: .* rescale {scaled}"):
        family().solve([(x[:25], y[:25]), (x[25:], y[25:])], start=start, verbose=False)
    err = capfd.readouterr().err
    assert err == "", err


def test_the_same_data_rescaled_solves():
    """The control: the message's advice works (x / its scale, r * the scale)."""
    x = np.linspace(0.0, 1.0, 50)
    y = 2.0 * np.exp(0.5 * x)
    fit = ExponentialRegression().solve(x, y, start="guess")
    np.testing.assert_allclose(fit.params.to_numpy(), [2.0, 0.5], rtol=1e-8)
