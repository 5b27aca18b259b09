"""NIST StRD nonlinear regression: bwkeras `solve` beside scipy's least_squares.

Every problem of NIST's nonlinear set (the 27 files bundled as bwkeras.datasets.nist_strd), from both of
NIST's starting points, with default settings: bwkeras ParametricRegression.solve (autodiff
Jacobian), scipy.optimize.least_squares method="lm" (MINPACK) with its defaults, the same
at its best (x_scale="jac", MINPACK's own column-norm scaling, and ftol = xtol = gtol =
machine epsilon), and method="trf" with its defaults; the scipy runs use their default
finite-difference Jacobian. For each: the LRE (NIST's count of correct
digits) of the worst parameter and the worst standard error (cov = s^2 (J^T J)^-1 at the
solution for scipy), iterations (scipy: Jacobian evaluations), wall time of one solve, and
whether it meets the bar LRE >= 6 on parameters and >= 4 on standard errors.

    python -m benchmarks nist [--quick]
"""
import time
import warnings

import numpy as np

QUICK = ["Misra1a", "BoxBOD", "MGH09", "Nelson"]
_EPS = float(np.finfo(float).eps)


def _lre(est, cert):
    est, cert = np.asarray(est, dtype=float), np.asarray(cert, dtype=float)
    with np.errstate(all="ignore"):
        rel = np.abs(est - cert) / np.abs(cert)
        out = np.where(rel == 0, 15.0, -np.log10(rel))
    out = np.where(np.isfinite(out), out, -99.0)
    return float(np.min(np.clip(out, -99.0, 15.0)))


def _bwkeras(problem, start):
    from bwkeras.regression import ParametricRegression

    model = ParametricRegression(problem.expression, dict(zip(problem.param_names, start)),
                                 inputs=None if problem.inputs == ("x",) else problem.inputs,
                                 dtype="float64")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = model.solve(problem.x, problem.response_values)
    seconds = time.perf_counter() - t0
    return r.params.to_numpy(), r.std_errors.to_numpy(), r.iterations, seconds, r.stop_reason


def _scipy(problem, start, **options):
    from scipy.optimize import least_squares

    from bwkeras.regression.expression import Expression

    expr = Expression(problem.expression, problem.param_names, variables=problem.inputs)
    y = problem.response_values

    def residual(theta):
        with np.errstate(all="ignore"):
            f = expr.evaluate(problem.x, dict(zip(problem.param_names, theta)), backend="numpy")
        return np.asarray(f, dtype=float) - y

    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            res = least_squares(residual, np.array(start, dtype=float), **options)
        except Exception as exc:  # a failed solve is a result too
            return None, None, 0, time.perf_counter() - t0, f"error: {type(exc).__name__}"
    seconds = time.perf_counter() - t0
    n, p = len(y), len(start)
    J = res.jac
    with np.errstate(all="ignore"):
        try:
            cov = np.linalg.inv(J.T @ J) * (2 * res.cost) / (n - p)
            se = np.sqrt(np.diag(cov))
        except np.linalg.LinAlgError:
            se = np.full(p, np.nan)
    return res.x, se, int(res.njev or res.nfev), seconds, res.message


SOLVERS = {
    "bwkeras": _bwkeras,
    "scipy-lm": lambda pr, s: _scipy(pr, s, method="lm"),
    # MINPACK at its best: its own column scaling and every tolerance at machine epsilon.
    "scipy-lm-tight": lambda pr, s: _scipy(pr, s, method="lm", x_scale="jac", ftol=_EPS,
                                           xtol=_EPS, gtol=_EPS, max_nfev=100000),
    "scipy-trf": lambda pr, s: _scipy(pr, s, method="trf"),
}


def run(quick=False):
    from bwkeras.datasets import nist_strd, nist_strd_names

    names = QUICK if quick else nist_strd_names()
    rows = []
    for name in names:
        problem = nist_strd(name)
        for k, start in enumerate(problem.starts):
            row = {"problem": name, "start": k + 1, "difficulty": problem.difficulty}
            for solver, fn in SOLVERS.items():
                params, se, iterations, seconds, note = fn(problem, start)
                lp = -99.0 if params is None else _lre(params, problem.certified_params)
                ls = -99.0 if se is None else _lre(se, problem.certified_std_errors)
                row[solver] = {"lre_params": round(lp, 2), "lre_std_errors": round(ls, 2),
                               "iterations": iterations, "seconds": round(seconds, 4),
                               "meets_bar": bool(lp >= 6 and ls >= 4), "note": str(note)[:80]}
            rows.append(row)
    totals = {s: sum(r[s]["meets_bar"] for r in rows) for s in SOLVERS}
    params_ok = {s: sum(r[s]["lre_params"] >= 6 for r in rows) for s in SOLVERS}
    median_seconds = {s: float(np.median([r[s]["seconds"] for r in rows])) for s in SOLVERS}
    _print_table(rows)
    return {"benchmark": "nist", "pairs": len(rows), "meets_bar": totals,
            "params_lre_at_least_6": params_ok, "median_seconds_per_solve": median_seconds,
            "bar": "LRE >= 6 on every parameter and >= 4 on every standard error",
            "rows": rows}


def _print_table(rows):
    head = f"{'problem':9s} s " + " ".join(f"{s:>26s}" for s in SOLVERS)
    print(head)
    print(" " * 12 + " ".join(f"{'lre_p lre_se   it     sec':>26s}" for _ in SOLVERS))
    for r in rows:
        cells = []
        for s in SOLVERS:
            c = r[s]
            cells.append(f"{c['lre_params']:6.1f} {c['lre_std_errors']:6.1f} {c['iterations']:5d} "
                         f"{c['seconds']:7.3f}{'' if c['meets_bar'] else '*'}".rjust(26))
        print(f"{r['problem']:9s} {r['start']} " + " ".join(cells))
    print("(* misses the bar LRE >= 6 on parameters, >= 4 on standard errors)")
