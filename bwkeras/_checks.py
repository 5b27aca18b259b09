"""Argument checks for the whole package: numbers, choices, flags, arrays and parameter values.

Every error names the argument, the value it got and what it expected
("units must be an integer >= 1, got 0"). numpy only: importing this module never starts
TensorFlow, Keras or pandas (a pandas object can only reach a check once pandas is imported,
so it is recognised through ``sys.modules``).
"""
import numbers
import sys

import numpy as np


def is_integer(value):
    """True for an int-like number that is not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def is_real(value):
    """True for a real number (ints included) that is not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _got(value, right_type):
    return f"got {value!r}" if right_type else f"got {value!r} of type {type(value).__name__}"


def integer(name, value, minimum=None, maximum=None, expected=None):
    """`value` as an int in [minimum, maximum] (either bound may be None), or ValueError.

    expected: what the message says is allowed, when the bounds alone do not say it.
    """
    ok = is_integer(value)
    if not (ok and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)):
        if expected is None:
            expected = "an integer" + _bounds(minimum, maximum, False, False)
        raise ValueError(f"{name} must be {expected}, {_got(value, ok)}")
    return int(value)


def real(name, value, low=None, high=None, low_open=False, high_open=False, finite=True,
         expected=None):
    """`value` as a float within the bounds (either may be None; `low_open` / `high_open`
    exclude them), or ValueError. NaN never passes; infinity passes only with finite=False
    and no bound on its side. expected: what the message says is allowed, when the bounds
    alone do not say it."""
    ok = is_real(value)
    inside = ok and not np.isnan(value) and (not finite or np.isfinite(value))
    if inside and low is not None:
        inside = value > low if low_open else value >= low
    if inside and high is not None:
        inside = value < high if high_open else value <= high
    if not inside:
        if expected is None:
            if low is not None and high is not None:
                expected = "a number" + _bounds(low, high, low_open, high_open)
            elif low is None and high is None:
                expected = "a finite number" if finite else "a real number, not NaN"
            else:
                expected = ("a finite number" if finite else "a number") + \
                    _bounds(low, high, low_open, high_open)
        raise ValueError(f"{name} must be {expected}, {_got(value, ok)}")
    return float(value)


def _bounds(low, high, low_open, high_open):
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f" in {left}{low}, {high}{right}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def fraction(name, value, low=0.0, high=1.0, include_low=True, expected=None):
    """`value` as a float in [low, high) (or (low, high) with include_low=False), or ValueError."""
    return real(name, value, low, high, low_open=not include_low, high_open=True,
                expected=expected)


def choice(name, value, allowed):
    """`value` if it is one of the strings `allowed`, else ValueError."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(allowed)}")
    return value


def boolean(name, value):
    """`value` as a bool if it is True or False (numpy's too), else ValueError."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _pandas_types():
    pd = sys.modules.get("pandas")
    return (pd.Series, pd.DataFrame) if pd is not None else ((), ())


def as_float64(name, value):
    """`value` (array, list, Series, tensor) as a float64 numpy array of any shape;
    TypeError unless it holds real numbers (bools count as 0/1)."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be numeric (array, Series, tensor), got {type(value).__name__}")
    try:
        array = np.asarray(value)
    except Exception as exc:  # e.g. ragged lists
        raise TypeError(f"{name} cannot be converted to a numeric array: {exc}") from None
    if array.dtype.kind == "O":
        try:  # Python ints past the float64 range stay objects in numpy
            np.asarray(value, dtype=np.float64)
        except OverflowError:
            raise ValueError(f"{name} holds an integer too large for float64 (the largest "
                             "float64 is about 1.8e308)") from None
        except (TypeError, ValueError):
            pass
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers, got an array of dtype {array.dtype} "
            f"(allowed: bool, integer or floating point)"
        )
    return array.astype(np.float64, copy=False)


def as_series(series, name="series", min_length=1, why=None):
    """`series` (list, numpy array, pandas Series or one-column frame) as a 1-D float64
    numpy array; ValueError for non-numeric values (bools included), NaN or infinity, other
    shapes, or fewer than `min_length` observations (`why` says what needs them). Errors
    give the position of the first bad value, and its index label for a pandas series."""
    pd_series, pd_frame = _pandas_types()
    if isinstance(series, pd_frame):
        if series.shape[1] != 1:
            raise ValueError(
                f"{name} must be one column of numbers, got a DataFrame with columns "
                f"{list(series.columns)}"
            )
        series = series.iloc[:, 0]
    labels = series.index if isinstance(series, pd_series) else None
    if isinstance(series, pd_series):
        raw = series.to_numpy()
    elif isinstance(series, (list, tuple)):
        raw = np.asarray(series, dtype=object)  # keeps "x" in [1, "x"] a str, 1 an int
    else:
        raw = np.asarray(series)
    if raw.ndim == 2 and raw.shape[1] == 1:
        raw = raw[:, 0]
    if raw.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {raw.shape}")

    def where(i):
        return f"position {i}" + (f" (index {labels[i]!r})" if labels is not None else "")

    if raw.dtype.kind not in "iuf":
        for i, value in enumerate(raw.tolist()):
            if not is_real(value):
                raise ValueError(
                    f"{name} must hold numbers only; found {value!r} of type "
                    f"{type(value).__name__} at {where(i)}"
                )
        if raw.dtype.kind != "O":
            # Every element is a real number but the array dtype is not numeric.
            raise ValueError(f"{name} must hold numbers only, got an array of dtype {raw.dtype}")
    values = raw.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise ValueError(
            f"{name} must hold finite numbers; found {float(values[i])!r} at {where(i)} "
            f"({int((~finite).sum())} non-finite values in all)"
        )
    if len(values) < min_length:
        need = f" ({why})" if why else ""
        raise ValueError(
            f"{name} has {len(values)} observations; need at least {min_length}{need}"
        )
    return values


def param_values(names, values, current=None, name="params"):
    """Parameter values as a float64 vector in `names` order.

    values: a mapping or pandas Series name -> value, or a sequence in `names` order. A
    mapping may leave names out only when `current` (a vector in `names` order) supplies
    their values. ValueError for unknown or missing names, a wrong count, or values that
    are not finite.
    """
    names = list(names)
    if hasattr(values, "keys"):  # dict, pandas Series, any mapping
        unknown = [k for k in values.keys() if k not in names]
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} in {name}; the parameters are {names}")
        if current is None:
            missing = [k for k in names if k not in values.keys()]
            if missing:
                raise ValueError(f"{name} lack {missing}; expected a value for each of {names}")
            current = np.zeros(len(names))
        vector = np.array(current, dtype=np.float64)
        for k in values.keys():
            vector[names.index(k)] = as_float64(f"{name}[{k!r}]", values[k])
    else:
        vector = as_float64(name, values).ravel()
        if vector.shape != (len(names),):
            raise ValueError(
                f"{name} must be {len(names)} values for {names}, in that order; got {vector.size}"
            )
    if not np.isfinite(vector).all():
        raise ValueError(
            f"{name} must be finite numbers, got {dict(zip(names, vector.tolist()))}"
        )
    return vector
