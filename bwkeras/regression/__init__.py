"""Regression families as Keras models, with exact and second-order solvers.

    from bwkeras.regression import PolynomialRegression
    model = PolynomialRegression(degree=3, dtype="float64")
    result = model.solve(x, y)          # exact least squares (QR), written into the weights
    result.summary()                    # coef, std err, t, P>|t|
    model.compile(optimizer="sgd", loss="mse"); model.fit(x, y)   # or train it like any model

Families: LinearRegression, PolynomialRegression, ExponentialRegression,
LogisticRegression, ParametricRegression. Linear-in-parameters families (and other models
such as AR(p), via `least_squares`) solve by streaming QR; the others by Levenberg-Marquardt
with an autodiff Jacobian. Both stream tf.data.Datasets and reduce over Horovod ranks.
"""
from .base import RegressionModel
from .capacity import capacity_curve
from .exponential import ExponentialRegression
from .expression import Expression
from .levenberg_marquardt import ConvergenceWarning, levenberg_marquardt
from .linear import LinearRegression
from .linear_solve import least_squares
from .logistic import LogisticRegression
from .optimality import OptimalityGap, gap_to_optimum, lre
from .parametric import ParametricRegression
from .polynomial import PolynomialRegression
from .result import FitResult, Prediction

__all__ = [
    "RegressionModel", "LinearRegression", "PolynomialRegression", "ExponentialRegression",
    "LogisticRegression", "ParametricRegression", "Expression", "FitResult", "Prediction", "least_squares",
    "levenberg_marquardt", "ConvergenceWarning", "capacity_curve", "gap_to_optimum",
    "OptimalityGap", "lre",
]
