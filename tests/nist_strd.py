"""Reader for NIST StRD nonlinear regression files (tests/data/nist_strd/*.dat).

The files are NIST's own (public domain, header kept), as distributed at
https://www.itl.nist.gov/div898/strd/nls/nls_main.shtml. Each states its layout in its
header ("Starting Values (lines 41 to 43)", "Data (lines 61 to 74)"); this reader follows
those line numbers, and takes the model formula from the "Model:" block, turning NIST's
square brackets into parentheses so it parses as a formula for ParametricRegression.

    problem = load("MGH10")
    problem.expression, problem.starts[0], problem.certified_params, problem.x, problem.y
"""
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data" / "nist_strd"
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


@dataclass
class Problem:
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


def names():
    return sorted(p.stem for p in DATA.glob("*.dat"))


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


def load(name):
    lines = (DATA / f"{name}.dat").read_text().splitlines()
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
    return Problem(name=name, difficulty=difficulty, expression=expression, response=response,
                   inputs=inputs, param_names=params, starts=[starts1, starts2],
                   certified_params=np.array(cert), certified_std_errors=np.array(se),
                   certified_rss=rss, certified_residual_sd=rsd, df_resid=df, x=x, y=data[:, 0])
