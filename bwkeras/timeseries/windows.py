"""Supervised learning from a series: sliding windows, chronological splits, and scaling
fitted on the training part only."""
import dataclasses
import math

import numpy as np
import pandas as pd

from .._checks import as_series, choice, fraction, integer, is_integer, real

SCALERS = ("standard", "minmax")


def _index_of(series, n):
    """The index labels of a pandas series, else positions 0..n-1."""
    if isinstance(series, (pd.Series, pd.DataFrame)):
        return series.index
    return pd.RangeIndex(n)


def _windowing(series, lags, horizon, stride):
    """The series as float64 values and the checked window sizes, or ValueError."""
    lags = integer("lags", lags, minimum=1)
    horizon = integer("horizon", horizon, minimum=1)
    stride = integer("stride", stride, minimum=1)
    values = as_series(series, min_length=lags + horizon,
                       why=f"lags + horizon = {lags} + {horizon} for one window")
    return values, lags, horizon, stride


def _window_count(n, lags, horizon, stride):
    return (n - lags - horizon) // stride + 1


def windows(series, lags, horizon=1, stride=1, as_dataset=False, batch_size=32):
    """Sliding windows (X, y) of a univariate series, in time order.

    Window i reads x[i*stride : i*stride + lags] (oldest first) and its target is the
    next `horizon` values x[i*stride + lags : i*stride + lags + horizon].

    Returns numpy arrays X of shape (n_windows, lags) and y of shape (n_windows, horizon),
    float64; or, with as_dataset=True, a tf.data.Dataset of (X, y) batches of
    `batch_size` windows (not shuffled: shuffle the training part yourself if you want).
    """
    values, lags, horizon, stride = _windowing(series, lags, horizon, stride)
    count = _window_count(len(values), lags, horizon, stride)
    starts = np.arange(count) * stride
    x = values[starts[:, None] + np.arange(lags)[None, :]]
    y = values[starts[:, None] + lags + np.arange(horizon)[None, :]]
    if not as_dataset:
        return x, y
    import tensorflow as tf

    batch_size = integer("batch_size", batch_size, minimum=1)
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)


def _part_size(name, value, n):
    if is_integer(value):
        return integer(name, value, 0, n - 1, expected=f"a count in [0, {n}) for {n} samples")
    return int(round(fraction(name, value, expected="a fraction in [0, 1) or a count") * n))


def split_sizes(n, validation=0.15, test=0.15, gap=0):
    """(n_train, n_val, n_test) for n samples in time order, with `gap` samples dropped
    between consecutive non-empty parts. ValueError unless the training part keeps at
    least one sample."""
    n_val = _part_size("validation", validation, n)
    n_test = _part_size("test", test, n)
    gap = integer("gap", gap, minimum=0)
    gaps = gap * ((n_val > 0) + (n_test > 0))
    n_train = n - n_val - n_test - gaps
    if n_train < 1:
        raise ValueError(
            f"nothing left to train on: {n} samples, validation={validation!r} -> {n_val}, "
            f"test={test!r} -> {n_test}, gaps {gaps}"
        )
    return n_train, n_val, n_test


def chronological_split(*arrays, validation=0.15, test=0.15, gap=0):
    """Split arrays of equal length into consecutive train / validation / test parts,
    in time order (no shuffling): the model never trains on the future of what it is
    evaluated on.

    validation, test: a fraction in [0, 1) or a number of samples. gap: samples dropped
    between parts (use horizon - 1 windows so multi-step targets do not overlap).
    Returns [a_train, a_val, a_test, b_train, b_val, b_test, ...] like scikit-learn's
    train_test_split; numpy arrays and pandas objects keep their type.
    """
    if not arrays:
        raise ValueError("chronological_split needs at least one array, got none")
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"arrays must have the same length, got lengths {sorted(lengths)}")
    (n,) = lengths
    n_train, n_val, n_test = split_sizes(n, validation, test, gap)
    val_start = n_train + (gap if n_val else 0)
    test_start = val_start + n_val + (gap if n_test else 0)
    bounds = [(0, n_train), (val_start, val_start + n_val), (test_start, test_start + n_test)]
    out = []
    for a in arrays:
        for lo, hi in bounds:
            out.append(a.iloc[lo:hi] if isinstance(a, (pd.Series, pd.DataFrame)) else a[lo:hi])
    return out


class Scaler:
    """Affine scaling fitted on training data and applied unchanged to everything else.

    method="standard": (x - mean) / std; method="minmax": (x - min) / (max - min).
    Fit it on the training part only: statistics of validation or test values must not
    shape the inputs the model trains on.
    """

    def __init__(self, method="standard"):
        self.method = choice("scaling method", method, SCALERS)
        self.center_ = None
        self.scale_ = None

    def fit(self, x):
        values = as_series(np.ravel(x) if np.ndim(x) > 1 else x, name="scaler input")
        if self.method == "standard":
            center, scale = values.mean(), values.std()
        else:
            center, scale = values.min(), values.max() - values.min()
        if scale == 0.0:
            raise ValueError(f"cannot scale constant data (every value is {values[0]!r})")
        self.center_, self.scale_ = float(center), float(scale)
        return self

    def _check_fitted(self):
        if self.center_ is None:
            raise ValueError("this Scaler is not fitted yet; call fit(train) first")

    def transform(self, x):
        self._check_fitted()
        return (np.asarray(x, dtype=np.float64) - self.center_) / self.scale_

    def inverse_transform(self, x):
        self._check_fitted()
        return np.asarray(x, dtype=np.float64) * self.scale_ + self.center_

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def get_config(self):
        """The method and the fitted statistics (None before `fit`); `from_config` restores both."""
        return {"method": self.method, "center": self.center_, "scale": self.scale_}

    @classmethod
    def from_config(cls, config):
        scaler = cls(config["method"])
        if config.get("center") is not None:
            scaler.center_ = real("center", config["center"])
            scaler.scale_ = real("scale", config["scale"], low=0, low_open=True)
        return scaler

    def __repr__(self):
        return f"Scaler(method={self.method!r}, center={self.center_!r}, scale={self.scale_!r})"


@dataclasses.dataclass
class SupervisedData:
    """Train / validation / test windows of one series, and the scaler that made them.

    x_*: (n, lags) inputs, y_*: (n, horizon) targets, both on the scaled axis when
    `scaler` is set (map predictions back with scaler.inverse_transform).
    index_*: series index labels (e.g. years) of each window's first target.
    train_end: how many leading observations the scaler was fitted on; they are exactly
    those that training windows read or predict.
    """
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    index_train: pd.Index
    index_val: pd.Index
    index_test: pd.Index
    scaler: Scaler = None
    train_end: int = 0


def supervised_split(series, lags, horizon=1, stride=1, validation=0.15, test=0.15,
                     scale="standard"):
    """Windows of `series` split chronologically into train / validation / test, with
    scaling fitted on the training part only (no leakage from later observations).

    Windows are counted and split first (validation / test: fractions of the windows
    or counts); ceil((horizon - 1) / stride) windows are dropped between parts so no
    target is shared between them. The scaler (scale="standard", "minmax" or None) is
    fitted on the observations the training windows cover and applied to the whole
    series before windowing. Returns a `SupervisedData`.
    """
    values, lags, horizon, stride = _windowing(series, lags, horizon, stride)
    if scale is not None:
        choice("scale", scale, SCALERS)
    count = _window_count(len(values), lags, horizon, stride)
    gap = math.ceil((horizon - 1) / stride)
    n_train, n_val, n_test = split_sizes(count, validation, test, gap)
    train_end = (n_train - 1) * stride + lags + horizon
    scaler = Scaler(scale).fit(values[:train_end]) if scale is not None else None
    scaled = scaler.transform(values) if scaler is not None else values
    x, y = windows(scaled, lags, horizon, stride)
    labels = _index_of(series, len(values))[np.arange(count) * stride + lags]
    x_tr, x_va, x_te, y_tr, y_va, y_te, i_tr, i_va, i_te = chronological_split(
        x, y, labels, validation=n_val, test=n_test, gap=gap
    )
    return SupervisedData(x_tr, y_tr, x_va, y_va, x_te, y_te, i_tr, i_va, i_te, scaler, train_end)
