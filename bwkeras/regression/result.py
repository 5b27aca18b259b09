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
    rsquared, rsquared_adj, nobs, df_model, df_resid, llf, aic, bic, predict(x) and
    get_prediction(x) (confidence and prediction intervals, by the delta method for the
    nonlinear families), and, for a family's solve of in-memory arrays, resid and
    fittedvalues. k_constant is 1 when
    the model's R^2 is centred (an intercept, or any nonlinear family), 0 otherwise.

    Bounded solves (`solve(..., bounds={"b1": (0, None)})`): `bounds` holds the bounds
    given (name -> (lower, upper), None for an open side) and `active_bounds` the
    parameters held on a bound at the solution (name -> "lower" or "upper"). An active
    parameter is fixed there: its standard error (and t, p, interval) is NaN, the other
    standard errors are those of the fit with it fixed (from the free columns of J, still
    on df_resid = n_obs - p), `message` names it and summary() has a "bound" column. An
    inactive bound changes nothing: the standard errors are the unbounded ones.
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
    bounds: dict = None
    active_bounds: dict = field(default_factory=dict)
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

    def get_prediction(self, x, sample_weight=None):
        """Predictions at new x with their uncertainty, as statsmodels' `get_prediction`:
        a `Prediction` whose summary_frame(alpha) has mean, mean_se, mean_ci_lower/upper
        (confidence interval of f(x)) and obs_ci_lower/upper (prediction interval of a new
        observation y = f(x) + e).

        The mean's variance is the delta method's g(x)^T C g(x), with g = df/dtheta at x
        (autodiff) and C = cov_params(); for a family linear in its parameters g(x) is the
        design row and this is exactly OLS/WLS's x^T C x. A new observation adds the
        residual variance residual_sd^2 / w (sample_weight w of the new rows, default 1,
        as statsmodels' WLS `weights`). The quantile is Student's t on df_resid; for
        likelihood (Fisher scoring) fits it is the normal one and there is no observation
        interval (NaN). Parameters held on a bound count as fixed (no variance)."""
        import tensorflow as tf

        from .._checks import as_float64
        from .blocks import check_finite
        from .block_functions import BlockFunctions

        self._require_model("get_prediction")
        model = self.model
        xa = model._prepare_x(as_float64("x", model._select_x(x)))
        check_finite("x", xa)
        theta = self.params.to_numpy()
        fns = BlockFunctions(model._function, model.group_shapes, xa.shape)
        f, J = (t.numpy() for t in fns.jacobian(tf.constant(xa), tf.constant(theta)))
        C = np.nan_to_num(self.cov_params.to_numpy(), nan=0.0)   # held parameters: fixed
        var_mean = np.einsum("ij,jk,ik->i", J, C, J)
        n = len(f)
        if self.likelihood_based:
            var_obs = np.full(n, np.nan)
        else:
            w = np.ones(n) if sample_weight is None else np.asarray(
                as_float64("sample_weight", sample_weight)).ravel()
            if w.shape != (n,) or not np.isfinite(w).all() or (w <= 0).any():
                raise ValueError(f"sample_weight must hold {n} finite weights > 0 (one per row "
                                 f"of x), got shape {w.shape} with values {w[:5].tolist()}")
            var_obs = var_mean + self.residual_sd ** 2 / w
        return Prediction(predicted_mean=f, var_pred_mean=var_mean, var_obs=var_obs,
                          df=None if self.likelihood_based else self.df_resid)

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
        table = pd.DataFrame({
            "coef": self.params.to_numpy(),
            "std err": self.std_errors.to_numpy(),
            stat: self.tvalues.to_numpy(),
            f"P>|{stat}|": self.pvalues.to_numpy(),
            f"[{alpha / 2:g}": ci[0].to_numpy(),
            f"{1 - alpha / 2:g}]": ci[1].to_numpy(),
        }, index=self.params.index)
        if self.bounds is not None:
            table["bound"] = [self._bound_text(name) for name in self.params.index]
        return table

    def _bound_text(self, name):
        """The "bound" column of summary(): the interval given and, when the parameter is
        held on it, which side is active ("" for a parameter without bounds)."""
        if name not in self.bounds:
            return ""
        lo, hi = self.bounds[name]
        text = f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]"
        if name in self.active_bounds:
            text += f" active: {self.active_bounds[name]}"
        return text

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
            "bounds": None if self.bounds is None else {k: list(v) for k, v in self.bounds.items()},
            "active_bounds": dict(self.active_bounds),
        }

    def __str__(self):
        head = (f"{self.method} fit: n_obs={self.n_obs}, df_resid={self.df_resid}, "
                f"rss={self.rss:.10g}, r_squared={self.r_squared:.10g}, "
                f"residual_sd={self.residual_sd:.10g}, iterations={self.iterations}, "
                f"converged={self.converged}")
        if self.loglike is not None:
            head += f", loglike={self.loglike:.10g}"
        if self.active_bounds:
            head += "\n" + self.message.split("; ", 1)[-1]
        return head + "\n" + self.summary().to_string()


@dataclass(frozen=True, eq=False)
class Prediction:
    """Predictions at new x (from `FitResult.get_prediction`), as statsmodels'
    PredictionResults: predicted_mean, se_mean, se_obs, conf_int(obs, alpha),
    summary_frame(alpha). df: Student's t degrees of freedom of the quantile (None: the
    normal, for likelihood fits)."""

    predicted_mean: np.ndarray
    var_pred_mean: np.ndarray
    var_obs: np.ndarray
    df: int = None

    @property
    def se_mean(self):
        return np.sqrt(self.var_pred_mean)

    @property
    def se_obs(self):
        return np.sqrt(self.var_obs)

    def _quantile(self, alpha):
        alpha = float(alpha)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
        if self.df is None:
            return statistics.NormalDist().inv_cdf(1.0 - alpha / 2.0)
        return _student_t_quantile(1.0 - alpha / 2.0, self.df)

    def conf_int(self, obs=False, alpha=0.05):
        """(n, 2) array: the 1 - alpha interval of the mean f(x), or with obs=True of a
        new observation."""
        q = self._quantile(alpha)
        se = self.se_obs if obs else self.se_mean
        return np.column_stack([self.predicted_mean - q * se, self.predicted_mean + q * se])

    def summary_frame(self, alpha=0.05):
        """DataFrame with statsmodels' columns: mean, mean_se, mean_ci_lower,
        mean_ci_upper, obs_ci_lower, obs_ci_upper."""
        mean_ci, obs_ci = self.conf_int(False, alpha), self.conf_int(True, alpha)
        return pd.DataFrame({
            "mean": self.predicted_mean, "mean_se": self.se_mean,
            "mean_ci_lower": mean_ci[:, 0], "mean_ci_upper": mean_ci[:, 1],
            "obs_ci_lower": obs_ci[:, 0], "obs_ci_upper": obs_ci[:, 1],
        })


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
