"""AR(p): X_t = c + sum_{i=1..p} phi_i X_{t-i} + e_t as a Keras model."""
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .._checks import as_series, choice, integer, param_values
from .._keras import model_config, register_serializable, weight_dtype

TRENDS = ("c", "n")
# p weights of float64 and a (p + 2)^2 R factor: checked before anything is allocated
MAX_LAGS = 10_000


@register_serializable(package="bwkeras", name="AutoRegression")
class AutoRegression(keras.Model):
    """Autoregression of order p = `lags`, with a constant (trend="c") or without ("n").

    As a Keras model it maps a window of the p previous values, oldest first (the X of
    `bwkeras.timeseries.windows(series, lags=p)`), to the next value, so `fit` estimates
    it by (stochastic) gradient descent on the squared one-step error. `solve(series)`
    gives the exact least-squares estimate instead and sets the weights to it.

    Parameters: "c" (trend="c" only) and "phi_1".."phi_p" (phi_i multiplies X_{t-i}); see
    `params` and `set_params`. The weights are float64 by default (dtype: "float64" or
    "float32") so that an exact solve survives in them.
    """

    def __init__(self, lags=1, trend="c", dtype="float64", **kwargs):
        dtype = weight_dtype(dtype)
        super().__init__(dtype=dtype, **kwargs)
        self.weight_dtype = dtype
        self.lags = integer("lags", lags, minimum=1)
        if self.lags > MAX_LAGS:
            raise ValueError(f"lags must be at most {MAX_LAGS} (a weight and an observation "
                             f"per lag), got {self.lags}")
        self.trend = choice("trend", trend, TRENDS)
        self.build((None, self.lags))

    def build(self, input_shape=None):
        if getattr(self, "phi", None) is not None:
            return
        self.phi = self.add_weight(name="phi", shape=(self.lags,), initializer="zeros",
                                   dtype=self.weight_dtype)
        self.c = None
        if self.trend == "c":
            self.c = self.add_weight(name="c", shape=(), initializer="zeros", dtype=self.weight_dtype)
        # The last p observations of the series given to `solve`, the starting point of
        # `forecast`; NaN until `solve` (or `set_history`) sets them. Saved with the model.
        self.last_values = self.add_weight(
            name="last_values", shape=(self.lags,), dtype=self.weight_dtype, trainable=False,
            initializer=keras.initializers.Constant(np.nan),
        )
        self.built = True

    @property
    def param_names(self):
        return (["c"] if self.trend == "c" else []) + [f"phi_{i}" for i in range(1, self.lags + 1)]

    @property
    def params(self):
        """The current parameters as a float64 pandas Series named "c", "phi_1"...."""
        values = ([float(np.asarray(self.c))] if self.c is not None else []) + \
            list(np.asarray(self.phi, dtype=np.float64))
        return pd.Series(values, index=self.param_names, dtype=np.float64, name="params")

    def set_params(self, values):
        """Assign all parameters: from a mapping or Series by name, or from a sequence in
        `param_names` order."""
        values = param_values(self.param_names, values)
        if self.c is not None:
            self.c.assign(values[0])
        self.phi.assign(values[-self.lags:])

    def call(self, inputs):
        x = inputs
        rank = x.shape.rank if hasattr(x.shape, "rank") else len(x.shape)
        if rank is None:  # a relaxed trace signature: reshape to the only valid layout
            x = tf.reshape(x, [-1, self.lags])
        elif rank == 3 and x.shape[-1] == 1:
            x = tf.squeeze(x, axis=-1)
        elif rank != 2:
            raise ValueError(
                f"AutoRegression(lags={self.lags}) expects input of shape (batch, {self.lags}) "
                f"(the previous values, oldest first), got shape {tuple(x.shape)}"
            )
        if x.shape[-1] is not None and x.shape[-1] != self.lags:
            raise ValueError(
                f"AutoRegression(lags={self.lags}) expects {self.lags} values per window, "
                f"got shape {tuple(x.shape)}"
            )
        x = tf.cast(x, self.phi.dtype)
        # Window columns run X_{t-p} .. X_{t-1}; phi_1 belongs to the last column.
        y = tf.linalg.matvec(x, tf.reverse(tf.convert_to_tensor(self.phi), axis=[0]))
        if self.c is not None:
            y = y + tf.convert_to_tensor(self.c)
        return tf.expand_dims(y, axis=-1)

    # ---- exact solution -----------------------------------------------------------------

    def design(self, series):
        """The lagged regression (X, y) of `series`: rows t = p..n-1, columns "c" (a 1,
        trend="c" only) and X_{t-1}..X_{t-p}, in `param_names` order."""
        k = len(self.param_names)
        values = as_series(
            series, min_length=self.lags + k + 1,
            why=f"lags + horizon = {self.lags} + 1 for one equation, and {k + 1} equations for "
                f"{k} parameters and a residual",
        )
        n, p = len(values), self.lags
        columns = [values[p - i: n - i] for i in range(1, p + 1)]
        if self.trend == "c":
            columns.insert(0, np.ones(n - p))
        return np.column_stack(columns), values[p:]

    def solve(self, series):
        """Exact conditional least squares (OLS on the first p values held fixed), the
        estimate Stata's `var` and statsmodels' `AutoReg` report; sets the weights and the
        forecast origin, returns the regression's FitResult."""
        x, y = self.design(series)
        result = _least_squares(x, y, self.param_names, intercept=self.trend == "c")
        self.set_params(result.params)
        self.set_history(as_series(series)[-self.lags:])
        return result

    # ---- forecasting ----------------------------------------------------------------------

    def set_history(self, values):
        """Set the last p observed values (oldest first), the origin of `forecast`."""
        values = as_series(values, name="history")
        if len(values) < self.lags:
            raise ValueError(f"history needs the last {self.lags} values, got {len(values)}")
        self.last_values.assign(values[-self.lags:])

    def forecast(self, steps, history=None):
        """Point forecasts for the next `steps` periods by the AR recursion: each forecast
        feeds back as a lagged value. history: the observed series (its last p values are
        used); default: the series last given to `solve`. Returns float64 (steps,)."""
        steps = integer("steps", steps, minimum=1)
        if history is None:
            past = np.asarray(self.last_values, dtype=np.float64)
            if np.isnan(past).any():
                raise ValueError(
                    "no forecast origin: call solve(series) first or pass history=<series>"
                )
        else:
            past = as_series(history, name="history", min_length=self.lags,
                             why=f"the last {self.lags} values start the recursion")[-self.lags:]
        params = self.params.to_numpy()
        c = params[0] if self.c is not None else 0.0
        phi = params[-self.lags:]
        buffer = list(past)
        out = np.empty(steps)
        for h in range(steps):
            recent = np.array(buffer[::-1][: self.lags])  # X_{t-1}, X_{t-2}, ...
            out[h] = c + float(np.dot(phi, recent))
            buffer.append(out[h])
        return out

    def get_config(self):
        return model_config(self, super().get_config, lags=self.lags, trend=self.trend)


def _least_squares(x, y, names, intercept):
    """The regression package's QR least squares on the lag matrix (its constant column
    dropped: the solver adds the intercept itself). The series is whole on every rank,
    so the solve stays local even under a launcher."""
    from ..regression import least_squares

    design = x[:, 1:] if intercept else x
    return least_squares(design, y, param_names=names, intercept=intercept, distributed=False)
