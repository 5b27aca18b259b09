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
from .._lazy import lazy_attributes

# Loaded on first use (they import TensorFlow), so importing the package costs nothing.
__getattr__, __dir__, __all__ = lazy_attributes(__name__, {
    "RegressionModel": ".base",
    "LinearRegression": ".linear",
    "PolynomialRegression": ".polynomial",
    "ExponentialRegression": ".exponential",
    "LogisticRegression": ".logistic",
    "ParametricRegression": ".parametric",
    "Expression": ".expression",
    "FitResult": ".result",
    "least_squares": ".linear_solve",
    "levenberg_marquardt": ".levenberg_marquardt",
    "ConvergenceWarning": ".levenberg_marquardt",
    "capacity_curve": ".capacity",
    "gap_to_optimum": ".optimality",
    "OptimalityGap": ".optimality",
    "lre": ".optimality",
})
