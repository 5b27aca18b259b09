"""FitResult: what an exact or second-order solve returns, in the shape of statsmodels' results;
Solution: a solve's numbers as one float64 vector, the form in which they travel between ranks."""
import math
from dataclasses import dataclass

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

    def summary(self):
        """Coefficient table like statsmodels': coef, std err, t (z for likelihood fits), P>|t|."""
        stat = "z" if self.likelihood_based else "t"
        return pd.DataFrame({
            "coef": self.params.to_numpy(),
            "std err": self.std_errors.to_numpy(),
            stat: self.tvalues.to_numpy(),
            f"P>|{stat}|": self.pvalues.to_numpy(),
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

    def pack(self):
        return np.concatenate([
            np.asarray(self.params, dtype=np.float64).ravel(),
            np.asarray(self.cov, dtype=np.float64).ravel(),
            [self.rss, self.r_squared, self.residual_sd, self.loglike, self.iterations,
             float(self.converged)],
        ])

    @classmethod
    def unpack(cls, packed, n_params):
        """The Solution that `pack` made into `packed`, for `n_params` parameters."""
        packed = np.asarray(packed, dtype=np.float64)
        p = int(n_params)
        if packed.shape != (p + p * p + 6,):
            raise ValueError(f"a packed Solution of {p} parameters has {p + p * p + 6} values, "
                             f"got shape {packed.shape}")
        rss, r2, residual_sd, loglike, iterations, converged = packed[p + p * p:]
        return cls(params=packed[:p].copy(), cov=packed[p:p + p * p].reshape(p, p),
                   rss=float(rss), r_squared=float(r2), residual_sd=float(residual_sd),
                   loglike=float(loglike), iterations=int(iterations), converged=bool(converged))

    def fit_result(self, names, n_obs, method, message="", stop_reason="direct"):
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
            stop_reason=stop_reason,
        )
