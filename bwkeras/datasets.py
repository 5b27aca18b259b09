"""Real data sets that ship with bwkeras or with an installed library (no downloads).

- `sunspots()`: yearly mean sunspot numbers 1700-2008 (the pre-2015 NGDC series), bundled
  as ``bwkeras/data/sunspots.csv``.
- `digits()`: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes);
  scikit-learn is an optional dependency.
- `nist_strd(name)`: the 27 problems of NIST's Statistical Reference Datasets for
  nonlinear regression (https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml), with
  certified values and both NIST starts, bundled as ``bwkeras/data/nist_strd/*.dat``;
  `nist_strd_names()` lists them.

    problem = nist_strd("MGH10")
    problem.expression, problem.starts[0], problem.certified_params, problem.x, problem.y
"""
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd

__all__ = ["sunspots", "digits", "nist_strd", "nist_strd_names", "NistProblem"]

_NIST = resources.files("bwkeras").joinpath("data/nist_strd")


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

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass
class NistProblem:
    """A NIST StRD nonlinear regression problem (see `nist_strd`)."""

    name: str
    difficulty: str              # NIST's: "Lower", "Average" or "Higher"
    expression: str              # the model's right-hand side, formula syntax
    response: str                # "y", or "log(y)" (Nelson)
    inputs: tuple                # ("x",) or ("x1", "x2")
    param_names: list
    starts: list                 # [start 1, start 2], each a list of floats
    certified_params: np.ndarray
    certified_std_errors: np.ndarray
    certified_rss: float
    certified_residual_sd: float
    df_resid: int
    x: np.ndarray                # (n,) or (n, k) in `inputs` order
    y: np.ndarray                # the raw response (apply `response` to fit)

    @property
    def response_values(self):
        return np.log(self.y) if self.response == "log(y)" else self.y


def nist_strd_names():
    """The names of the bundled NIST StRD nonlinear problems (27), sorted."""
    return sorted(p.name[:-4] for p in _NIST.iterdir() if p.name.endswith(".dat"))


def _lines_of(header, label):
    m = re.search(label + r"\s*\(lines\s+(\d+)\s+to\s+(\d+)\)", header)
    if m is None:
        raise ValueError(f"no '{label} (lines a to b)' entry in the header")
    return int(m.group(1)), int(m.group(2))


def _model(lines):
    start = next(i for i, line in enumerate(lines) if line.startswith("Model:"))
    text, collecting = [], False
    for line in lines[start:]:
        s = line.strip()
        if not collecting and re.match(r"^(log\[y\]|y)\s*=", s):
            collecting = True
        if collecting:
            text.append(s)
            if re.search(r"\+\s*e\s*$", s):
                break
    formula = " ".join(text)
    lhs, rhs = formula.split("=", 1)
    rhs = re.sub(r"\+\s*e\s*$", "", rhs).strip()
    rhs = rhs.replace("[", "(").replace("]", ")")
    response = "log(y)" if lhs.strip().startswith("log") else "y"
    return rhs, response


def nist_strd(name):
    """One NIST StRD nonlinear problem as a `NistProblem`, e.g. ``nist_strd("MGH10")``:
    its formula (`expression`, `inputs`), both NIST starts, the certified parameters,
    standard errors, residual sum of squares and residual SD, and the data (x, y).

    The files are NIST's own (public domain, header kept), bundled under
    ``bwkeras/data/nist_strd``; the reader follows the line numbers each header states
    and turns NIST's square brackets into parentheses, so `expression` parses as a
    formula for `bwkeras.regression.ParametricRegression`.
    """
    if not isinstance(name, str) or name not in nist_strd_names():
        raise ValueError(f"unknown NIST StRD problem {name!r}; choose from {nist_strd_names()}")
    lines = _NIST.joinpath(f"{name}.dat").read_text().splitlines()
    header = "\n".join(lines[:40])
    s0, s1 = _lines_of(header, "Starting Values")
    d0, d1 = _lines_of(header, "Data")
    params, starts1, starts2, cert, se = [], [], [], [], []
    for line in lines[s0 - 1:s1]:
        m = re.match(r"\s*(b\d+)\s*=\s*(.*)", line)
        values = [float(v) for v in re.findall(_NUMBER, m.group(2))]
        if len(values) != 4:
            raise ValueError(f"{name}: parameter line {line!r} does not hold 4 numbers")
        params.append(m.group(1))
        starts1.append(values[0])
        starts2.append(values[1])
        cert.append(values[2])
        se.append(values[3])
    tail = "\n".join(lines[s1:d0 - 1])

    def figure(label):
        return float(re.search(label + r":\s*(" + _NUMBER + ")", tail).group(1))

    rss, rsd = figure("Residual Sum of Squares"), figure("Residual Standard Deviation")
    df = int(figure("Degrees of Freedom"))
    columns = lines[d0 - 2].split(":", 1)[1].split() if ":" in lines[d0 - 2] else ["y", "x"]
    data = np.array([[float(v) for v in line.split()] for line in lines[d0 - 1:d1] if line.strip()])
    if len(columns) != data.shape[1]:  # pragma: no cover - every file names its columns
        columns = ["y"] + [f"x{i + 1}" for i in range(data.shape[1] - 1)]
    inputs = tuple(columns[1:])
    x = data[:, 1] if len(inputs) == 1 else data[:, 1:]
    expression, response = _model(lines)
    difficulty = re.search(r"(Lower|Average|Higher) Level of Difficulty", header).group(1)
    return NistProblem(name=name, difficulty=difficulty, expression=expression, response=response,
                   inputs=inputs, param_names=params, starts=[starts1, starts2],
                   certified_params=np.array(cert), certified_std_errors=np.array(se),
                   certified_rss=rss, certified_residual_sd=rsd, df_resid=df, x=x, y=data[:, 0])
