"""How far a fitted model is from the exact optimum, and NIST's log relative error.

The tutorial trains with gradient descent, SGD and mini-batches; `gap_to_optimum` says
how close that got: R_fit / R_opt (R the least-squares objective, or the deviance for a
maximum-likelihood logistic model) and the distance between the parameter vectors.

Gradient methods and scaling: on data such as NIST Norris (x up to ~1000) the loss surface
in (b, m) is a very long valley and SGD needs a tiny learning rate. Standardise the inputs
first, x_s = (x - mean(x)) / std(x): the model y = b' + m' x_s is the same family
reparametrised, its optimal R is the same number, and SGD converges quickly. Compare the
fitted model with the optimum on the same (standardised) inputs; map the parameters back
with m = m' / std(x), b = b' - m * mean(x) if needed.
"""
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .blocks import BlockSource
from .collective import Reducer


def lre(estimate, certified):
    """Log relative error -log10(|estimate - certified| / |certified|), NIST's measure of the
    number of correct significant digits; -log10|estimate| where certified is 0; inf for an
    exact match. Works elementwise on arrays."""
    est = np.asarray(estimate, dtype=np.float64)
    cert = np.asarray(certified, dtype=np.float64)
    err = np.abs(est - cert)
    rel = np.where(cert == 0, err, err / np.where(cert == 0, 1.0, np.abs(cert)))
    with np.errstate(divide="ignore"):
        out = -np.log10(rel)
    return out if out.ndim else float(out)


@dataclass(frozen=True, eq=False)
class OptimalityGap:
    """r_fit / r_opt: the objective at the model's parameters and at the optimum;
    ratio = r_fit / r_opt (>= 1 up to rounding); param_distance = ||theta - theta*||_2 and
    relative_param_distance = that / ||theta*||_2; params_fit, params_opt by name."""

    objective: str
    r_fit: float
    r_opt: float
    ratio: float
    param_distance: float
    relative_param_distance: float
    params_fit: pd.Series
    params_opt: pd.Series

    def to_dict(self):
        return {
            "objective": self.objective, "r_fit": self.r_fit, "r_opt": self.r_opt,
            "ratio": self.ratio, "param_distance": self.param_distance,
            "relative_param_distance": self.relative_param_distance,
            "params_fit": self.params_fit.to_dict(), "params_opt": self.params_opt.to_dict(),
        }


def _objective_value(model, x, y, batch_size, reducer):
    def local():
        total = 0.0
        source = BlockSource(x, y, prepare_x=model._prepare_x, prepare_y=model._prepare_y,
                             select_x=model._select_x,
                             batch_size=batch_size)
        for xb, yb in source:
            f = model.predict_float64(xb)
            if model.objective == "squared":
                total += float(np.sum((yb - f) ** 2))
            else:
                mu = np.clip(f, 1e-15, 1 - 1e-15)
                total += float(-2.0 * np.sum(y_log(yb, mu)))
        return total

    return float(reducer.sum([reducer.run(local)])[0])


def y_log(y, mu):
    return y * np.log(mu) + (1.0 - y) * np.log1p(-mu)


def gap_to_optimum(model, x, y=None, *, optimum=None, batch_size=None, distributed=None):
    """Compare `model`'s current parameters with the exact optimum on (x, y).

    optimum: a FitResult for the same family and data (e.g. from an earlier `solve`); by
    default a float64 copy of the model is solved here (nonlinear families start from the
    model's own parameters), leaving `model` untouched. The data may be arrays or a
    re-iterable stream of (x, y) batches; under a launcher each rank passes its shard.
    """
    from .base import RegressionModel

    if not isinstance(model, RegressionModel):
        raise TypeError(f"model must be a bwkeras regression model, got {type(model).__name__}")
    reducer = Reducer(distributed)
    config = dict(model.get_config(), dtype="float64", name=None)
    reference = type(model).from_config(config)
    theta_fit = model.params.to_numpy()
    reference.set_params(theta_fit)
    if optimum is None:
        optimum = reference.solve(x, y, batch_size=batch_size, distributed=distributed)
    if list(optimum.params.index) != model.param_names:
        raise ValueError(
            f"optimum has parameters {list(optimum.params.index)}, the model {model.param_names}"
        )
    theta_opt = optimum.params.to_numpy()
    reference.set_params(theta_fit)
    r_fit = _objective_value(reference, x, y, batch_size, reducer)
    reference.set_params(theta_opt)
    r_opt = _objective_value(reference, x, y, batch_size, reducer)
    distance = float(np.linalg.norm(theta_fit - theta_opt))
    norm = float(np.linalg.norm(theta_opt))
    return OptimalityGap(
        objective="R (sum of squared residuals)" if model.objective == "squared" else "deviance",
        r_fit=r_fit, r_opt=r_opt, ratio=r_fit / r_opt if r_opt > 0 else (1.0 if r_fit == 0 else np.inf),
        param_distance=distance,
        relative_param_distance=distance / norm if norm > 0 else np.nan,
        params_fit=pd.Series(theta_fit, index=model.param_names, name="fit"),
        params_opt=pd.Series(theta_opt, index=model.param_names, name="optimum"),
    )
