"""FitResult: what an exact or second-order solve returns, in the shape of statsmodels' results;
Solution: a solve's numbers as one float64 vector, the form in which they travel between ranks."""
import math
import statistics
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd


def _student_t_two_sided(t, df):
    """P(|T| > |t|) for Student's t with `df` degrees of freedom (elementwise).

    Uses the regularised incomplete beta function: P = I_{df/(df+t^2)}(df/2, 1/2).
    """
    import tensorflow as tf

    t = np.asarray(t, dtype=np.float64)
    out = np.full(t.shape, np.nan)
    ok = np.isfinite(t)
    if df <= 0 or not ok.any():
        return out
    z = df / (df + t[ok] ** 2)
    a = np.full(z.shape, df / 2.0)
    b = np.full(z.shape, 0.5)
    out[ok] = tf.math.betainc(a, b, z).numpy()
    return out


def _student_t_quantile(q, df):
    """The q-quantile (q in (0.5, 1)) of Student's t with `df` degrees of freedom, by
    bisection on the two-sided tail probability (60 halvings: below float64 resolution)."""
    target = 2.0 * (1.0 - q)  # P(|T| > t)
    lo, hi = 0.0, 1.0
    while _student_t_two_sided(np.array([hi]), df)[0] > target:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _student_t_two_sided(np.array([mid]), df)[0] > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4 * np.finfo(float).eps * hi:
            break
    return 0.5 * (lo + hi)


class _CovarianceFrame(pd.DataFrame):
    """The covariance DataFrame, callable as statsmodels' `cov_params()` (returns itself)."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def __call__(self):
        return pd.DataFrame(self)


def _normal_two_sided(z):
    z = np.asarray(z, dtype=np.float64)
    return np.array([math.erfc(abs(v) / math.sqrt(2.0)) if np.isfinite(v) else np.nan
                     for v in z.ravel()]).reshape(z.shape)


@dataclass(frozen=True, eq=False)
class FitResult:
    """The optimum of a regression family on a data set.

    params, std_errors: pandas Series indexed by the family's parameter names.
    cov_params: their covariance (DataFrame).
    rss: residual sum of squares; r_squared: 1 - rss / tss (centred tss when the model has
    an intercept, uncentred otherwise, as NIST and statsmodels do); residual_sd:
    sqrt(rss / df_resid); df_resid = n_obs - number of parameters.
    iterations, converged: of the iterative solvers (1 and True for a direct QR solve).
    method: "qr" (orthogonal factorisation), "levenberg-marquardt" (least squares) or
    "fisher-scoring" (maximum likelihood, binary outcomes).
    stop_reason: why the solve ended: "direct" (a direct QR solve), "relative_offset" or
    "rounding" (converged: the relative offset met the tolerance, or R is minimal to
    working precision), "iteration_budget", "step_too_small" or "no_decrease" (stopped
    short; `message` says what to try). See `bwkeras.regression.lm_core`.
    For maximum-likelihood fits loglike is the log-likelihood, r_squared is McFadden's
    pseudo R^2 (1 - loglike / loglike of the intercept-only model) and the standard errors
    come from the inverse Fisher information, as in Stata and statsmodels' Logit.

    statsmodels' names work too: bse, cov_params() (the covariance is callable and is
    also the DataFrame itself, the older name), tvalues, pvalues, conf_int(alpha), ssr,
    rsquared, rsquared_adj, nobs, df_model, df_resid, llf, aic, bic, and, for a family's
    solve of in-memory arrays, resid, fittedvalues and predict(x). k_constant is 1 when
    the model's R^2 is centred (an intercept, or any nonlinear family), 0 otherwise.
    """

    params: pd.Series
    std_errors: pd.Series
    cov_params: pd.DataFrame
    rss: float
    r_squared: float
    residual_sd: float
    df_resid: int
    n_obs: int
    iterations: int
    converged: bool
    method: str
    loglike: float = None
    message: str = ""
    stop_reason: str = "direct"
    k_constant: int = 1
    log_weights: float = 0.0
    model: object = field(default=None, repr=False)
    data: tuple = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.cov_params, _CovarianceFrame):
            object.__setattr__(self, "cov_params", _CovarianceFrame(self.cov_params))

    def _with(self, **changes):
        return replace(self, **changes)

    # -- statsmodels' names --------------------------------------------------------------
    @property
    def bse(self):
        """Standard errors (statsmodels' name for `std_errors`)."""
        return self.std_errors.rename("bse")

    @property
    def ssr(self):
        """Residual sum of squares (weighted for weighted fits); the same as `rss`."""
        return self.rss

    @property
    def rsquared(self):
        return self.r_squared

    @property
    def rsquared_adj(self):
        """1 - (nobs - k_constant) / df_resid (1 - R^2), as statsmodels."""
        return 1.0 - (self.n_obs - self.k_constant) / self.df_resid * (1.0 - self.r_squared)

    @property
    def nobs(self):
        return self.n_obs

    @property
    def df_model(self):
        """Parameters besides the constant: p - k_constant."""
        return len(self.params) - self.k_constant

    @property
    def llf(self):
        """Log-likelihood: the Bernoulli one for likelihood fits, otherwise the Gaussian
        one at the least-squares optimum, -n/2 (log(2 pi ssr / n) + 1) (+ sum(log w) / 2
        for weighted fits), as statsmodels' OLS/WLS."""
        if self.likelihood_based:
            return self.loglike
        n = self.n_obs
        return -0.5 * n * (math.log(2.0 * math.pi * self.rss / n) + 1.0) + 0.5 * self.log_weights

    @property
    def aic(self):
        return -2.0 * self.llf + 2.0 * len(self.params)

    @property
    def bic(self):
        return -2.0 * self.llf + math.log(self.n_obs) * len(self.params)

    def conf_int(self, alpha=0.05):
        """Confidence intervals (columns 0 and 1, as statsmodels): params -/+ q se, with q
        the 1 - alpha/2 quantile of Student's t on df_resid (the normal for likelihood
        fits)."""
        alpha = float(alpha)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        if self.likelihood_based:
            q = statistics.NormalDist().inv_cdf(1.0 - alpha / 2.0)
        else:
            q = _student_t_quantile(1.0 - alpha / 2.0, self.df_resid)
        se = self.std_errors.to_numpy()
        b = self.params.to_numpy()
        return pd.DataFrame({0: b - q * se, 1: b + q * se}, index=self.params.index)

    def _require_model(self, what):
        if self.model is None:
            raise ValueError(
                f"{what} needs the fitted model: this result came from `least_squares` "
                f"without one; use a regression family's solve()"
            )

    def predict(self, x):
        """f(x) at this result's parameters (float64), by the model that was fitted."""
        self._require_model("predict")
        return self.model._predict_at(x, self.params.to_numpy())

    def _data(self, what):
        self._require_model(what)
        if self.data is None:
            raise ValueError(
                f"{what} needs the data in memory: the solve streamed its data; compute "
                f"y - result.predict(x) batch by batch instead"
            )
        return self.data

    @property
    def fittedvalues(self):
        """f(x_i) on the data that were fitted (arrays only)."""
        x, _ = self._data("fittedvalues")
        return self.predict(x)

    @property
    def resid(self):
        """y_i - f(x_i) on the data that were fitted (arrays only; unweighted)."""
        x, y = self._data("resid")
        return np.asarray(y, dtype=np.float64).ravel() - self.predict(x)

    @property
    def param_names(self):
        return list(self.params.index)

    @property
    def likelihood_based(self):
        return self.method == "fisher-scoring"

    @property
    def tvalues(self):
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.params / self.std_errors

    @property
    def pvalues(self):
        t = self.tvalues.to_numpy()
        if self.likelihood_based:
            p = _normal_two_sided(t)
        else:
            p = _student_t_two_sided(t, self.df_resid)
        return pd.Series(p, index=self.params.index, name="pvalues")

    def summary(self, alpha=0.05):
        """Coefficient table like statsmodels': coef, std err, t (z for likelihood fits),
        P>|t|, and the 1 - alpha confidence interval ([0.025, 0.975] by default)."""
        stat = "z" if self.likelihood_based else "t"
        ci = self.conf_int(alpha)
        return pd.DataFrame({
            "coef": self.params.to_numpy(),
            "std err": self.std_errors.to_numpy(),
            stat: self.tvalues.to_numpy(),
            f"P>|{stat}|": self.pvalues.to_numpy(),
            f"[{alpha / 2:g}": ci[0].to_numpy(),
            f"{1 - alpha / 2:g}]": ci[1].to_numpy(),
        }, index=self.params.index)

    def to_dict(self):
        """Plain-Python view (JSON-serialisable), e.g. to write next to a run's outputs."""
        def num(v):
            return None if v is None else float(v)

        return {
            "params": {k: float(v) for k, v in self.params.items()},
            "std_errors": {k: float(v) for k, v in self.std_errors.items()},
            "cov_params": self.cov_params.to_numpy().tolist(),
            "rss": num(self.rss), "r_squared": num(self.r_squared),
            "residual_sd": num(self.residual_sd), "df_resid": int(self.df_resid),
            "n_obs": int(self.n_obs), "iterations": int(self.iterations),
            "converged": bool(self.converged), "method": self.method,
            "loglike": num(self.loglike), "message": self.message,
            "stop_reason": self.stop_reason,
        }

    def __str__(self):
        head = (f"{self.method} fit: n_obs={self.n_obs}, df_resid={self.df_resid}, "
                f"rss={self.rss:.10g}, r_squared={self.r_squared:.10g}, "
                f"residual_sd={self.residual_sd:.10g}, iterations={self.iterations}, "
                f"converged={self.converged}")
        if self.loglike is not None:
            head += f", loglike={self.loglike:.10g}"
        return head + "\n" + self.summary().to_string()


@dataclass(frozen=True, eq=False)
class Solution:
    """The numbers a solver computes for a FitResult: parameters, their covariance, rss,
    r_squared, residual_sd, the log-likelihood (NaN for least squares), the iteration count
    and whether it converged. `pack` makes them one float64 vector (rank 0's is broadcast,
    so every rank returns the same result) and `unpack` reads one back."""

    params: np.ndarray
    cov: np.ndarray
    rss: float
    r_squared: float
    residual_sd: float
    loglike: float = np.nan
    iterations: int = 1
    converged: bool = True
    log_weights: float = 0.0

    def pack(self):
        return np.concatenate([
            np.asarray(self.params, dtype=np.float64).ravel(),
            np.asarray(self.cov, dtype=np.float64).ravel(),
            [self.rss, self.r_squared, self.residual_sd, self.loglike, self.iterations,
             float(self.converged), self.log_weights],
        ])

    @classmethod
    def unpack(cls, packed, n_params):
        """The Solution that `pack` made into `packed`, for `n_params` parameters."""
        packed = np.asarray(packed, dtype=np.float64)
        p = int(n_params)
        if packed.shape != (p + p * p + 7,):
            raise ValueError(f"a packed Solution of {p} parameters has {p + p * p + 7} values, "
                             f"got shape {packed.shape}")
        rss, r2, residual_sd, loglike, iterations, converged, log_weights = packed[p + p * p:]
        return cls(params=packed[:p].copy(), cov=packed[p:p + p * p].reshape(p, p),
                   rss=float(rss), r_squared=float(r2), residual_sd=float(residual_sd),
                   loglike=float(loglike), iterations=int(iterations), converged=bool(converged),
                   log_weights=float(log_weights))

    def fit_result(self, names, n_obs, method, message="", stop_reason="direct", k_constant=1):
        """The FitResult for parameters `names` estimated from `n_obs` observations."""
        names = list(names)
        with np.errstate(invalid="ignore"):
            se = np.sqrt(np.diag(self.cov))
        return FitResult(
            params=pd.Series(self.params, index=names, name="params"),
            std_errors=pd.Series(se, index=names, name="std_errors"),
            cov_params=pd.DataFrame(self.cov, index=names, columns=names),
            rss=self.rss, r_squared=self.r_squared, residual_sd=self.residual_sd,
            df_resid=int(n_obs - len(names)), n_obs=int(n_obs), iterations=self.iterations,
            converged=self.converged, method=method,
            loglike=None if np.isnan(self.loglike) else self.loglike, message=message,
            stop_reason=stop_reason, k_constant=int(k_constant), log_weights=self.log_weights,
        )
