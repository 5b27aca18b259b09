"""Sample autocorrelation R_XX(k)."""
import numpy as np

from .._checks import as_series, boolean, integer


def default_nlags(n):
    """statsmodels' default number of lags: min(10 log10(n), n - 1)."""
    return int(min(int(10 * np.log10(n)), n - 1))


def acf(x, nlags=None, adjusted=False):
    """Autocorrelations r_0 = 1, r_1, ..., r_nlags of the series `x`.

        r_k = sum_{t=0}^{n-k-1} (x_t - m)(x_{t+k} - m) / sum_t (x_t - m)^2,  m = mean(x)

    (the biased estimator statsmodels and Box & Jenkins use; adjusted=True divides each
    lag's sum by n - k instead of n before normalising). Direct sums, no FFT, so the
    values are exact to rounding. nlags defaults to min(10 log10(n), n - 1).
    Returns a float64 array of length nlags + 1.
    """
    values = as_series(x, name="x", min_length=2, why="an autocorrelation needs two values")
    n = len(values)
    if nlags is None:
        nlags = default_nlags(n)
    nlags = integer("nlags", nlags, 0, n - 1,
                    expected=f"an integer in [0, {n - 1}] for {n} observations")
    adjusted = boolean("adjusted", adjusted)
    d = values - values.mean()
    c0 = float(np.dot(d, d))
    if c0 == 0.0:
        raise ValueError("x is constant: its autocorrelation is undefined (zero variance)")
    sums = np.array([np.dot(d[: n - k], d[k:]) for k in range(nlags + 1)])
    if adjusted:
        sums = sums * (n / (n - np.arange(nlags + 1)))
    return sums / c0
