"""Synthetic data with known truth, one generator per regression family.

Each returns Synthetic(x, y, truth): float64 arrays and a dict parameter name -> true
value, with the names the matching bwkeras.regression model uses, so a test or a notebook
can compare `model.params` with `truth` directly. noise=0 gives exact data (a solve
recovers the truth to rounding); noise=s adds Gaussian noise of standard deviation s.
"""
import math
from typing import NamedTuple

import numpy as np

from .._checks import choice, integer, is_real, real


class Synthetic(NamedTuple):
    x: np.ndarray
    y: np.ndarray
    truth: dict


def _check_n(n):
    return integer("n", n, minimum=1)


def _check_noise(noise):
    return real("noise", noise, low=0, expected="a finite number >= 0 (a standard deviation)")


def _check_range(x_range):
    try:
        lo, hi = (float(v) for v in x_range)
    except (TypeError, ValueError):
        raise ValueError(f"x_range must be a pair (low, high), got {x_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"x_range must be finite with low < high, got {x_range!r}")
    return lo, hi


def _vector(name, value):
    if is_real(value):
        return real(name, value), False
    values = [real(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if not values:
        raise ValueError(f"{name} must be a number or a non-empty sequence of numbers, got {value!r}")
    return np.array(values), True


def _x(rng, n, x_range, k=None):
    lo, hi = _check_range(x_range)
    shape = (n,) if k is None else (n, k)
    return rng.uniform(lo, hi, size=shape)


def _noisy(rng, f, noise):
    return f + rng.normal(0.0, noise, size=f.shape) if noise > 0 else f


def linear(n=100, m=2.0, b=1.0, noise=0.0, x_range=(-1.0, 1.0), seed=0):
    """y = m*x + b (+ noise); m a sequence of k slopes gives x of shape (n, k), truth b, m_1..m_k."""
    n, noise = _check_n(n), _check_noise(noise)
    b = real("b", b)
    slopes, vector = _vector("m", m)
    rng = np.random.default_rng(seed)
    if vector:
        x = _x(rng, n, x_range, len(slopes))
        f = b + x @ slopes
        truth = {"b": b, **{f"m_{j + 1}": float(s) for j, s in enumerate(slopes)}}
    else:
        x = _x(rng, n, x_range)
        f = b + slopes * x
        truth = {"b": b, "m": slopes}
    return Synthetic(x, _noisy(rng, f, noise), truth)


def polynomial(n=100, coefficients=(1.0, -2.0, 0.5), noise=0.0, x_range=(-2.0, 2.0), seed=0):
    """y = sum_i a_i x^i (+ noise); truth a_0..a_n."""
    n, noise = _check_n(n), _check_noise(noise)
    coef, vector = _vector("coefficients", coefficients)
    coef = np.atleast_1d(coef)
    rng = np.random.default_rng(seed)
    x = _x(rng, n, x_range)
    f = np.polynomial.polynomial.polyval(x, coef)
    return Synthetic(x, _noisy(rng, f, noise), {f"a_{i}": float(a) for i, a in enumerate(coef)})


def exponential(n=100, N=2.0, r=0.5, noise=0.0, x_range=(0.0, 3.0), seed=0):
    """y = N * exp(r * x) (+ noise); truth N, r."""
    n, noise = _check_n(n), _check_noise(noise)
    N, r = real("N", N), real("r", r)
    rng = np.random.default_rng(seed)
    x = _x(rng, n, x_range)
    return Synthetic(x, _noisy(rng, N * np.exp(r * x), noise), {"N": N, "r": r})


OUTCOMES = ("probability", "bernoulli")


def logistic(n=200, a=0.5, b=2.0, noise=0.0, x_range=(-4.0, 4.0), outcome="probability", seed=0):
    """Logistic curve p = 1 / (1 + exp(-(a + b x))); b a sequence gives k features.

    outcome="probability": y = p (+ noise), for the least-squares family;
    outcome="bernoulli": y ~ Bernoulli(p) in {0, 1}, for loss="binary_crossentropy"
    (noise must then be 0). Truth a, b (or b_1..b_k).
    """
    n, noise = _check_n(n), _check_noise(noise)
    choice("outcome", outcome, OUTCOMES)
    if outcome == "bernoulli" and noise:
        raise ValueError(f"noise must be 0 for Bernoulli outcomes (they are random already), got {noise!r}")
    a = real("a", a)
    slopes, vector = _vector("b", b)
    rng = np.random.default_rng(seed)
    if vector:
        x = _x(rng, n, x_range, len(slopes))
        eta = a + x @ slopes
        truth = {"a": a, **{f"b_{j + 1}": float(s) for j, s in enumerate(slopes)}}
    else:
        x = _x(rng, n, x_range)
        eta = a + slopes * x
        truth = {"a": a, "b": slopes}
    p = 1.0 / (1.0 + np.exp(-eta))
    if outcome == "bernoulli":
        y = (rng.uniform(size=n) < p).astype(np.float64)
    else:
        y = _noisy(rng, p, noise)
    return Synthetic(x, y, truth)


def parametric(expression, params, n=100, noise=0.0, x_range=(0.0, 1.0), seed=0):
    """y = f(x; params) (+ noise) for a formula in the ParametricRegression grammar."""
    from ..regression.expression import Expression

    n, noise = _check_n(n), _check_noise(noise)
    if not isinstance(params, dict) or not params:
        raise ValueError(f"params must be a non-empty dict name -> true value, got {params!r}")
    values = {k: real(k, v) for k, v in params.items()}
    expr = Expression(expression, list(values))
    rng = np.random.default_rng(seed)
    x = _x(rng, n, x_range)
    with np.errstate(all="ignore"):
        f = np.asarray(expr.evaluate(x, values, backend="numpy"), dtype=np.float64)
    if not np.isfinite(f).all():
        raise ValueError(f"{expression!r} is not finite on x_range {x_range!r} with {values}")
    return Synthetic(x, _noisy(rng, f, noise), values)
