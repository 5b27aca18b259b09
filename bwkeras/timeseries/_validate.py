"""Turn a user's series into a clean float64 vector, or raise ValueError saying why not."""
import numbers

import numpy as np
import pandas as pd


def as_series(series, name="series", min_length=1, why=None):
    """`series` (list, numpy array, pandas Series or one-column frame) as a 1-D float64
    numpy array; ValueError for non-numeric values, NaN or infinity, other shapes, or
    fewer than `min_length` observations (`why` says what needs them)."""
    if isinstance(series, pd.DataFrame):
        if series.shape[1] != 1:
            raise ValueError(
                f"{name} must be one column of numbers, got a DataFrame with columns "
                f"{list(series.columns)}"
            )
        series = series.iloc[:, 0]
    labels = series.index if isinstance(series, pd.Series) else None
    if isinstance(series, pd.Series):
        raw = series.to_numpy()
    elif isinstance(series, (list, tuple)):
        raw = np.asarray(series, dtype=object)  # keeps "x" in [1, "x"] a str, 1 an int
    else:
        raw = np.asarray(series)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {raw.shape}")
    if raw.dtype.kind not in "iuf":
        _check_numeric_elements(raw, name, labels)
    values = raw.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        where = f"position {i}" + (f" (index {labels[i]!r})" if labels is not None else "")
        raise ValueError(
            f"{name} must hold finite numbers; found {float(values[i])!r} at {where} "
            f"({int((~finite).sum())} non-finite values in all)"
        )
    if len(values) < min_length:
        need = f" ({why})" if why else ""
        raise ValueError(
            f"{name} has {len(values)} observations; need at least {min_length}{need}"
        )
    return values


def _check_numeric_elements(raw, name, labels):
    if raw.dtype.kind != "O":
        _raise_non_numeric(raw, name, labels)
    flat = raw.ravel().tolist()
    if all(isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in flat):
        return
    _raise_non_numeric(raw, name, labels)


def _raise_non_numeric(raw, name, labels):
    for i, value in enumerate(raw.tolist()):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            where = f"position {i}" + (f" (index {labels[i]!r})" if labels is not None else "")
            raise ValueError(
                f"{name} must hold numbers only; found {value!r} of type "
                f"{type(value).__name__} at {where}"
            )
    # Every element is a real number but the array dtype is not numeric (e.g. object).
    raise ValueError(f"{name} must hold numbers only, got an array of dtype {raw.dtype}")


def index_of(series, n):
    """The index labels of a pandas series, else positions 0..n-1."""
    if isinstance(series, (pd.Series, pd.DataFrame)):
        return series.index
    return pd.RangeIndex(n)
