"""Real data sets that ship with bwkeras or with an installed library (no downloads).

- `sunspots()`: yearly mean sunspot numbers 1700-2008 (the pre-2015 NGDC series), bundled
  as ``bwkeras/data/sunspots.csv``.
- `digits()`: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes);
  scikit-learn is an optional dependency.
"""
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["sunspots", "digits"]


def sunspots():
    """The yearly sunspot series 1700-2008 as a float64 pandas Series indexed by year."""
    with resources.files("bwkeras").joinpath("data/sunspots.csv").open("r") as handle:
        frame = pd.read_csv(handle, comment="#")
    series = pd.Series(
        frame["sunspots"].to_numpy(dtype=np.float64),
        index=pd.Index(frame["year"].to_numpy(dtype=np.int64), name="year"),
        name="sunspots",
    )
    return series


def digits(scale=True):
    """scikit-learn's 8x8 digits: x of shape (1797, 64), float32; y of shape (1797,), int64.

    scale=True maps pixel intensities 0..16 to [0, 1]. Needs scikit-learn
    (``pip install scikit-learn``); the data are read from its installed files.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "bwkeras.datasets.digits() needs scikit-learn, which ships the 8x8 digits data "
            f"set; install it with `pip install scikit-learn` ({exc})"
        ) from exc
    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float32)
    if scale:
        x = x / np.float32(16.0)
    return x, np.asarray(bunch.target, dtype=np.int64)
