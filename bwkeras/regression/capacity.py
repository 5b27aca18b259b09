"""Model capacity: training and validation R per polynomial degree (the tutorial's
"degrees of freedom" figure), each degree solved exactly."""
import numpy as np
import pandas as pd

from .._checks import as_float64, fraction, integer
from .blocks import as_response, check_finite
from .polynomial import PolynomialRegression


def _split(x, y, validation, seed):
    if isinstance(validation, tuple) and len(validation) == 2:
        xv = as_float64("validation x", validation[0])
        yv = as_response("validation y", validation[1])
        check_finite("validation x", xv)
        if len(xv) != len(yv):
            raise ValueError(f"validation x and y have different lengths: {len(xv)} and {len(yv)}")
        if len(yv) == 0:
            raise ValueError("validation data are empty")
        return x, y, xv, yv
    fraction("validation", validation, include_low=False,
             expected="a fraction in (0, 1) of the data to hold out, or a tuple (x_val, y_val)")
    n = len(y)
    n_val = int(round(validation * n))
    if n_val < 1 or n - n_val < 1:
        raise ValueError(f"validation={validation!r} of {n} samples leaves an empty training or validation set")
    order = np.random.default_rng(seed).permutation(n)
    val, train = order[:n_val], order[n_val:]
    return x[train], y[train], x[val], y[val]


def capacity_curve(x, y, degrees, validation=0.25, seed=0):
    """Exact polynomial fits of each degree on the training part of (x, y).

    validation: a fraction of the samples held out at random (with `seed`), or (x_val, y_val).
    Returns a DataFrame indexed by degree with columns n_params, train_rss, validation_rss,
    train_mse, validation_mse (per sample) and train_r_squared. Training R can only fall as
    the degree grows; validation R falls, then rises once the model fits the noise.
    """
    xa = as_float64("x", x)
    ya = as_response("y", y)
    if xa.ndim == 2 and xa.shape[1] == 1:
        xa = xa[:, 0]
    if xa.ndim != 1:
        raise ValueError(f"x must be one feature, shape (n,) or (n, 1), got {xa.shape}")
    check_finite("x", xa)
    if len(xa) != len(ya):
        raise ValueError(f"x and y have different lengths: {len(xa)} rows and {len(ya)} rows")
    if len(ya) == 0:
        raise ValueError("x and y are empty: need at least one sample")
    if isinstance(degrees, (str, bytes)) or not hasattr(degrees, "__iter__"):
        raise ValueError(f"degrees must be a list of integers >= 0, got {degrees!r}")
    degrees = [integer("degree", d, minimum=0) for d in degrees]
    if not degrees:
        raise ValueError("degrees is empty: give at least one polynomial degree")
    xt, yt, xv, yv = _split(xa, ya, validation, seed)
    rows = []
    for d in degrees:
        if d + 1 > len(yt):
            raise ValueError(
                f"degree {d} has {d + 1} parameters but the training set has only {len(yt)} samples"
            )
        model = PolynomialRegression(d, dtype="float64")
        try:
            fit = model.solve(xt, yt)
        except ValueError as exc:
            raise ValueError(f"degree {d}: {exc}") from None
        val_rss = float(np.sum((yv - model.predict_float64(xv)) ** 2))
        rows.append({"degree": d, "n_params": d + 1, "train_rss": fit.rss,
                     "validation_rss": val_rss, "train_mse": fit.rss / len(yt),
                     "validation_mse": val_rss / len(yv), "train_r_squared": fit.r_squared})
    return pd.DataFrame(rows).set_index("degree")
