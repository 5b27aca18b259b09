"""Argument checks shared by models and time-series tools: each error names the value
it got and what it expected."""
import numbers

import numpy as np


def positive_int(name, value, minimum=1):
    """`value` as an int >= `minimum`, or ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def fraction(name, value, low=0.0, high=1.0, include_low=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a number in [{low}, {high}), got {value!r}")
    ok_low = value >= low if include_low else value > low
    if not (ok_low and value < high):
        bracket = "[" if include_low else "("
        raise ValueError(f"{name} must be in {bracket}{low}, {high}), got {value!r}")
    return float(value)


def choice(name, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; expected one of {tuple(allowed)}")
    return value
