"""FitResult speaks statsmodels' names: every figure against statsmodels OLS / WLS / Logit on
the same data (Longley, NIST's hardest well-known linear problem; Spector's logit), and the
nonlinear ones against NIST's certified standard errors and residual SD."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bwkeras.datasets import nist_strd
from bwkeras.regression import (LinearRegression, LogisticRegression, ParametricRegression,
                                least_squares, lre)

sm = pytest.importorskip("statsmodels.api")
REFDATA = Path(__file__).resolve().parents[1].parent / "shared" / "refdata"

# Longley's condition number is ~5e9 (its year and GNP columns): two exact float64 solves by
# different factorisations agree to ~1e-16 * 5e9 ~ 1e-6 in the worst parameter in principle;
# NIST's certified values show both reach LRE > 7.8, so 1e-7 relative is a fair bar.
LONGLEY_RTOL = 1e-7


def longley():
    d = json.loads((REFDATA / "nist_longley.json").read_text())
    x = np.column_stack([d["X"][c] for c in d["columns"][1:]])
    return x, np.array(d["y"])


def check_names(result, ref, names, rtol):
    np.testing.assert_allclose(result.params[names].to_numpy(), ref.params, rtol=rtol)
    np.testing.assert_allclose(result.bse[names].to_numpy(), ref.bse, rtol=rtol)
    np.testing.assert_allclose(result.cov_params().loc[names, names].to_numpy(), ref.cov_params(),
                               rtol=rtol)
    np.testing.assert_allclose(result.tvalues[names].to_numpy(), ref.tvalues, rtol=rtol)
    # p-values: relative error grows as p shrinks (tail integrals); absolute 1e-12 covers
    # the tiny ones, rtol the rest.
    np.testing.assert_allclose(result.pvalues[names].to_numpy(), ref.pvalues, rtol=1e-6, atol=1e-12)
    ci = result.conf_int(0.1).loc[names].to_numpy()
    np.testing.assert_allclose(ci, ref.conf_int(0.1), rtol=rtol)
    assert result.nobs == ref.nobs and result.df_resid == ref.df_resid
    assert result.df_model == ref.df_model


def test_longley_ols_figures_equal_statsmodels():
    x, y = longley()
    ref = sm.OLS(y, sm.add_constant(x)).fit()
    result = LinearRegression(n_features=6, dtype="float64").solve(x, y)
    names = result.param_names  # b (constant) first, then m_1..m_6
    check_names(result, ref, names, LONGLEY_RTOL)
    for ours, theirs in [("ssr", "ssr"), ("rsquared", "rsquared"), ("rsquared_adj", "rsquared_adj"),
                         ("llf", "llf"), ("aic", "aic"), ("bic", "bic")]:
        assert getattr(result, ours) == pytest.approx(getattr(ref, theirs), rel=LONGLEY_RTOL), ours
    # Residuals are differences of nearly equal numbers (y ~ 7e4, resid ~ 3e2): absolute
    # agreement to 1e-6 of y's size.
    np.testing.assert_allclose(result.fittedvalues, ref.fittedvalues, rtol=1e-10)
    np.testing.assert_allclose(result.resid, ref.resid, atol=1e-6 * np.abs(y).max())
    np.testing.assert_allclose(result.predict(x[:3]), ref.predict(sm.add_constant(x)[:3]), rtol=1e-10)
    table = result.summary()
    assert list(table.columns) == ["coef", "std err", "t", "P>|t|", "[0.025", "0.975]"]
    np.testing.assert_allclose(table[["[0.025", "0.975]"]].to_numpy(), result.conf_int().to_numpy())
    # The old names still work and agree.
    assert result.rss == result.ssr and result.r_squared == result.rsquared
    pd.testing.assert_frame_equal(pd.DataFrame(result.cov_params), result.cov_params())


def test_weighted_figures_equal_statsmodels_wls():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 10, size=50)
    w = rng.uniform(0.5, 3.0, size=50)
    y = 2.0 + 0.3 * x + rng.normal(size=50) / np.sqrt(w)
    ref = sm.WLS(y, sm.add_constant(x), weights=w).fit()
    result = LinearRegression(dtype="float64").solve(x, y, sample_weight=w)
    check_names(result, ref, ["b", "m"], 1e-9)
    for name in ("ssr", "rsquared", "rsquared_adj", "llf", "aic", "bic"):
        assert getattr(result, name) == pytest.approx(getattr(ref, name), rel=1e-9), name


def test_no_constant_figures_equal_statsmodels():
    d = json.loads((REFDATA / "nist_noint1.json").read_text())
    x, y = np.array(d["x"]), np.array(d["y"])
    ref = sm.OLS(y, x).fit()
    result = least_squares(x, y, param_names=["B1"], intercept=False)
    check_names(result, ref, ["B1"], 1e-10)
    for name in ("rsquared", "rsquared_adj", "llf", "aic", "bic"):
        assert getattr(result, name) == pytest.approx(getattr(ref, name), rel=1e-10), name
    with pytest.raises(ValueError, match="resid needs the fitted model"):
        result.resid


def test_spector_logit_figures_equal_statsmodels():
    d = json.loads((REFDATA / "spector_logit_probit.json").read_text())
    x = np.column_stack([d["X"][k] for k in ("GPA", "TUCE", "PSI")])
    y = np.array(d["y"])
    ref = sm.Logit(y, sm.add_constant(x)).fit(disp=0, tol=1e-12)
    result = LogisticRegression(n_features=3, loss="binary_crossentropy", dtype="float64").solve(x, y)
    names = ["a", "b_1", "b_2", "b_3"]
    # Two Newton/Fisher-scoring solves to their convergence limits: ~1e-9 apart.
    check_names(result, ref, names, 1e-7)
    for name in ("llf", "aic", "bic"):
        assert getattr(result, name) == pytest.approx(getattr(ref, name), rel=1e-9), name
    assert list(result.summary().columns)[2:4] == ["z", "P>|z|"]  # normal, as statsmodels' Logit
    np.testing.assert_allclose(result.fittedvalues, ref.predict(), rtol=1e-7)


def test_nonlinear_figures_equal_nist_certified():
    p = nist_strd("Misra1a")
    model = ParametricRegression(p.expression, dict(zip(p.param_names, p.starts[0])), dtype="float64")
    result = model.solve(p.x, p.y)
    assert lre(result.bse.to_numpy(), p.certified_std_errors).min() >= 6
    assert lre(np.sqrt(result.ssr / result.df_resid), p.certified_residual_sd) >= 6
    assert result.df_model == 1 and result.nobs == len(p.y)
    np.testing.assert_allclose(result.resid, p.y - result.fittedvalues, rtol=0, atol=0)
    assert result.ssr == pytest.approx(np.sum(result.resid ** 2), rel=1e-12)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1\), got 1.5"):
        result.conf_int(1.5)
