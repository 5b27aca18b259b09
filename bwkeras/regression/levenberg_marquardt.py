"""Levenberg-Marquardt / Gauss-Newton for nonlinear families, Jacobian by TF autodiff.

Least squares ("squared"): minimise R = sum_i (y_i - f(x_i; theta))^2.
Binary outcomes ("bernoulli"): maximise the log-likelihood of y_i ~ Bernoulli(f(x_i; theta)).
Both are Gauss-Newton on weighted residuals r_i / sqrt(V_i) with Jacobian J_i / sqrt(V_i)
(V = 1, or V = mu (1 - mu), which makes the step Fisher scoring; for the logistic model's
canonical link that is Newton's method); the damping and step acceptance are Nielsen's
variant of Levenberg-Marquardt with Marquardt's diagonal scaling.

Every pass over the data streams row blocks: the Jacobian block J (float64, from one
tf.GradientTape pass per block, see `block_jacobian`) and the residuals go into an
incremental QR of [J | r], so a step needs only the p x p R factor and Q^T r:
    min ||J d - r||^2 + lam ||D d||^2  =  min ||[R; sqrt(lam) D] d - [Q^T r; 0]||^2.
Under a launcher the R factors are stacked over ranks and factorised again, the objective
sums over ranks, and rank 0's step is broadcast, so all ranks follow one path.

The iteration (scaling, damping, geodesic acceleration, convergence and stopping rules)
is `lm_core.iterate`, which sees the problem only through these passes; its docstring
gives the rules and their sources.
"""
import warnings

import numpy as np

from .._checks import choice, integer, real
from .block_functions import BlockFunctions
from .blocks import BlockSource, StreamProgress
from .collective import Reducer
from .linear_solve import rank_check
from .lm_core import ADVICE, Point, default_budget, iterate
from .result import Solution
from .streaming import IncrementalQR, Moments

OBJECTIVES = ("squared", "bernoulli")
_EPS = np.finfo(np.float64).eps
# Rounding of a residual y_i - f_i, in units of eps times the sizes of f's terms: y itself
# carries the rounding of however it was computed (a few units) and f's evaluation adds a
# few more; 16 bounds both with a margin. (NIST StRD results do not change between 1 and
# 16: it matters only where residuals are pure rounding.)
_NOISE_ULPS = 16
_CLIP = 1e-15  # fitted probabilities are kept in [1e-15, 1 - 1e-15] (finite log-likelihood)


class ConvergenceWarning(UserWarning):
    """An iterative solve stopped before meeting its convergence criterion."""


def _weights(objective, f, y):
    """Weighted residuals' ingredients: (objective terms, residual, 1/sqrt(V))."""
    if objective == "squared":
        r = y - f
        return r * r, r, None
    mu = np.clip(f, _CLIP, 1.0 - _CLIP)
    dev = -2.0 * (y * np.log(mu) + (1.0 - y) * np.log1p(-mu))
    return dev, y - mu, 1.0 / np.sqrt(mu * (1.0 - mu))


def check_bounds(bounds, names, theta, project_start=False):
    """bounds: None or a dict name -> (lower, upper), either side None for open. Returns
    (lower, upper) float64 arrays over `names` (+-inf where open), or (None, None).
    ValueError/TypeError naming the offending entry: an unknown name, a side that is not a
    number, lower > upper, or a starting value outside its bounds (project_start=True:
    theta, e.g. a data-driven guess, is moved onto the nearest bound instead, in place)."""
    if bounds is None:
        return None, None
    if not isinstance(bounds, dict):
        raise TypeError(f"bounds must be a dict name -> (lower, upper), got {bounds!r}")
    p = len(names)
    lower, upper = np.full(p, -np.inf), np.full(p, np.inf)
    for key, pair in bounds.items():
        if key not in names:
            raise ValueError(f"bounds names an unknown parameter {key!r}; the parameters are {names}")
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"bounds[{key!r}] must be a pair (lower, upper), either None for "
                            f"no bound, got {pair!r}")
        sides = []
        for side, value, default in (("lower", pair[0], -np.inf), ("upper", pair[1], np.inf)):
            if value is None:
                sides.append(default)
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"the {side} bound of {key!r} must be a number or None, got {value!r}")
            value = float(value)
            if np.isnan(value):
                raise ValueError(f"the {side} bound of {key!r} is NaN: give a number or None")
            sides.append(value)
        lo, hi = sides
        if lo > hi:
            raise ValueError(f"bounds[{key!r}] = {tuple(pair)!r}: the lower bound {lo:g} exceeds "
                             f"the upper bound {hi:g}")
        j = names.index(key)
        if project_start:
            theta[j] = min(max(theta[j], lo), hi)
        if not lo <= theta[j] <= hi:
            raise ValueError(f"the starting value {key}={theta[j]:g} lies outside its bounds "
                             f"[{lo:g}, {hi:g}]: start inside them")
        lower[j], upper[j] = lo, hi
    return lower, upper


def levenberg_marquardt(model, x, y=None, *, start=None, objective="squared", batch_size=None,
                        distributed=None, max_iterations=None, tolerance=1e-10, verbose="auto",
                        acceleration=True, sample_weight=None, bounds=None,
                        project_start=False):
    """Fit `model` (a RegressionModel: `_function`, `param_names`, `group_shapes`,
    `_prepare_x`, `_prepare_y`) from the parameter vector `start` (default: its current
    parameters). Returns a FitResult; does not modify the model.

    max_iterations: accepted steps allowed (default `lm_core.default_budget(p)`, a cap on
    runaway solves rather than a convergence rule). tolerance: the relative offset at which
    the solve has converged. acceleration: geodesic acceleration (Transtrum and Sethna
    2012). sample_weight: weights w_i >= 0 for arrays x, y (a stream carries them as a
    third element of each batch): minimise sum_i w_i (y_i - f_i)^2 (or the weighted
    log-likelihood). verbose: report rows read per pass over streamed data on stderr (True, False or
    "auto": streamed data only). bounds: dict name -> (lower, upper) (None for an open
    side), e.g. {"b1": (0, None)}; see `lm_core` (projected steps) and FitResult's
    `active_bounds` (a parameter held on its bound has no standard error; the others'
    are conditional on it). A start outside the bounds is a ValueError, unless
    project_start=True (a data-driven guess), which moves it onto the nearest bound."""
    choice("objective", objective, OBJECTIVES)
    names = model.param_names
    p = len(names)
    if max_iterations is None:
        max_iterations = default_budget(p)
    max_iterations = integer("max_iterations", max_iterations, minimum=1,
                             expected="an integer >= 1 or None")
    tolerance = real("tolerance", tolerance, 0, 1, low_open=True, high_open=True)
    if not isinstance(acceleration, bool):
        raise TypeError(f"acceleration must be True or False, got {acceleration!r}")
    shapes = model.group_shapes
    theta = np.array(model._param_vector() if start is None else start, dtype=np.float64).ravel()
    if theta.shape != (p,) or not np.isfinite(theta).all():
        raise ValueError(f"starting values must be {p} finite numbers for {names}, got {theta.tolist()}")
    lower, upper = check_bounds(bounds, names, theta, project_start)

    reducer = Reducer(distributed)
    holder = {}

    def make_source():
        source = BlockSource(x, y, prepare_x=model._prepare_x, prepare_y=model._prepare_y,
                             batch_size=batch_size, select_x=model._select_x,
                             sample_weight=sample_weight, check_scale=True)
        source.require_reiterable("a nonlinear solve")
        StreamProgress.for_source(source, "Levenberg-Marquardt", verbose)
        holder["source"] = source

    reducer.run(make_source)
    source = holder["source"]
    compiled = {}

    def functions(xb):
        key = xb.shape[1:]
        if key not in compiled:
            compiled[key] = BlockFunctions(model._function, shapes, xb.shape)
        return compiled[key]

    def local(theta_, jacobian):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return local_sums(theta_, jacobian)

    def local_sums(theta_, jacobian):
        qr = IncrementalQR(p + 1) if jacobian else None
        obj = rss = ysum = fnoise = 0.0
        weighted = sw = swy = swyy = logw = 0.0
        n = 0
        ymoments = Moments(1)
        for xb, yb, wb in source.weighted():
            fns = functions(xb)
            if jacobian:
                f, J = (t.numpy() for t in fns.jacobian(xb, theta_))
            else:
                f, J = fns.values(xb, theta_).numpy(), None
            if not np.isfinite(f).all():
                return np.inf, None, None
            terms, r, w = _weights(objective, f, yb)
            if wb is not None:
                terms = terms * wb
                root = np.sqrt(wb)
                w = root if w is None else w * root
            obj += terms.sum()
            n += len(yb)
            if jacobian:
                if not np.isfinite(J).all():
                    raise ValueError(
                        f"the model's Jacobian is not finite at {dict(zip(names, theta_.tolist()))}; "
                        f"choose other starting values"
                    )
                rss += (r * r).sum() if wb is None else (wb * r * r).sum()
                ysum += yb.sum()
                ymoments.add(yb)
                wy = np.ones_like(yb) if wb is None else wb
                weighted = max(weighted, float(wb is not None))
                logw += 0.0 if wb is None else np.log(wb[wb > 0]).sum()
                sw, swy, swyy = sw + wy.sum(), swy + (wy * yb).sum(), swyy + (wy * yb * yb).sum()
                # Rounding of r: _NOISE_ULPS units in the last place of the sizes of f's
                # terms, |f| and the |J_ij theta_j| (f's change when theta moves by itself).
                df = _NOISE_ULPS * _EPS * (np.abs(f) + np.abs(J) @ np.abs(theta_))
                if w is not None:
                    J, r, df = J * w[:, None], r * w, df * w
                fnoise += (df * df).sum()
                qr.add(np.column_stack([J, r]))
        stats = np.array([obj, rss, n, ysum, fnoise, weighted, sw, swy, swyy, logw])
        return obj, stats, (qr.R if jacobian else None, ymoments.pack())

    def full_pass(theta_):
        obj, stats, extra = reducer.run(local, theta_, True)
        flag = reducer.sum([0.0 if np.isfinite(obj) else 1.0])
        if flag[0] > 0:
            return None
        total = reducer.sum(stats)
        # Rank 0's factor everywhere: every rank then takes the same decisions, even on
        # nodes whose BLAS would round the combining QR differently.
        R = reducer.broadcast(IncrementalQR.combine(reducer.gather_rows(extra[0]), p + 1))
        ym = Moments.unpack_all(reducer.gather_rows(extra[1]))
        # R's rounding from f's: |sum 2 r_i df_i| <= 2 ||r|| ||df|| (weighted residuals).
        noise = 2.0 * np.hypot(R[p, p], np.linalg.norm(R[:p, p])) * np.sqrt(total[4])
        return Point(float(total[0]), R, float(noise),
                     extra=(total[1], int(total[2]), total[3], ym, total[5:]))

    def objective_pass(theta_):
        obj, _, _ = reducer.run(local, theta_, False)
        total = reducer.sum([obj if np.isfinite(obj) else np.inf])
        return float(total[0])

    def local_curvature(theta_, v):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            g = np.zeros(p)
            for xb, yb, wb in source.weighted():
                fns = functions(xb)
                c = np.ones(len(yb)) if wb is None else wb
                if objective == "bernoulli":
                    c = c * _weights(objective, fns.values(xb, theta_).numpy(), yb)[2] ** 2
                gb = fns.curvature(xb, theta_, v, c)
                if not np.isfinite(gb).all():
                    return np.full(p, np.inf)
                g += gb
            return g

    def curvature_pass(theta_, v):
        g = reducer.sum(reducer.run(local_curvature, theta_, v))
        return g if np.isfinite(g).all() else None

    current = full_pass(theta)
    if current is None:
        raise ValueError(
            f"the model is not finite at the starting values {dict(zip(names, theta.tolist()))} "
            f"(e.g. exp overflow or log of a negative number); choose other starting values"
        )
    n = current.extra[1]
    if n == 0:
        raise ValueError("the data are empty: need at least one (x, y) sample")
    if n < p:
        raise ValueError(f"{n} observation(s) cannot determine {p} parameters {names}: need at least {p}")

    outcome = iterate(full_pass, objective_pass, curvature_pass, theta, current,
                      max_iterations=max_iterations, tolerance=tolerance,
                      acceleration=acceleration, broadcast=reducer.broadcast,
                      lower=lower, upper=upper)
    theta, current = outcome.theta, outcome.point
    held = outcome.held
    # A singular Jacobian (parameters that cannot be told apart) is an error, not a
    # convergence problem: report it before anything else.
    if not held.all():
        rank_check(current.R[:p, :p][:, ~held], [m for m, h in zip(names, held) if not h], n)
    message = outcome.message
    if not outcome.converged:
        _, qtr = current.pieces(p)
        offset = np.linalg.norm(qtr) / max(np.sqrt(current.obj), 1e-300)
        message = (f"{message} after {outcome.iterations} steps (max_iterations={max_iterations}); "
                   f"relative offset {offset:.3g} > tolerance {tolerance:g}")
        warnings.warn(
            f"{type(model).__name__}.solve did not converge ({message}); the result holds the "
            f"last iterate: {ADVICE[outcome.stop_reason]}",
            ConvergenceWarning, stacklevel=3,
        )

    active = {}
    if lower is not None:
        for j, name in enumerate(names):
            if held[j]:
                active[name] = "lower" if theta[j] <= lower[j] else "upper"
        if active:
            message += "; " + _bound_note(active, names, lower, upper)
    solution = _finish(current, theta, n, objective, p, outcome.iterations, outcome.converged,
                       held)
    solution = Solution.unpack(reducer.broadcast(solution.pack()), p)
    method = "levenberg-marquardt" if objective == "squared" else "fisher-scoring"
    given = None if lower is None else {
        name: (None if np.isneginf(lower[j]) else float(lower[j]),
               None if np.isposinf(upper[j]) else float(upper[j]))
        for j, name in enumerate(names) if name in bounds}
    return solution.fit_result(names, n, method=method, message=message,
                               stop_reason=outcome.stop_reason)._with(
        bounds=given, active_bounds=active)


def _bound_note(active, names, lower, upper):
    held = ", ".join(f"{name} at its {side} bound "
                     f"{(lower if side == 'lower' else upper)[names.index(name)]:g}"
                     for name, side in active.items())
    return (f"bound active: {held} (held there: no standard error for it, and the other "
            f"standard errors are conditional on it)")


def _finish(state, theta, n, objective, p, iterations, converged, held=None):
    """The Solution at theta. Parameters held on a bound are fixed there: their rows and
    columns of the covariance are NaN, the others' come from the free columns of J."""
    RJ = state.R[:p, :p]
    state_rss, _, state_ysum, state_ymoments, (weighted, sw, swy, swyy, logw) = state.extra
    free = np.ones(p, dtype=bool) if held is None else ~held
    R_inv = np.full((p, p), np.nan)
    if free.all():
        R_inv = np.linalg.solve(RJ, np.eye(p))
    elif free.any():
        _, T = np.linalg.qr(RJ[:, free])
        k = int(free.sum())
        R_inv = np.zeros((p, k))
        R_inv[free] = np.linalg.solve(T, np.eye(k))
        R_inv[~free] = np.nan
    df = n - p
    loglike = np.nan
    if objective == "squared":
        rss = state.obj
        sigma2 = rss / df if df > 0 else np.nan
        cov = sigma2 * (R_inv @ R_inv.T)
        # Weighted: sum w (y - ybar_w)^2, as statsmodels' WLS.
        tss = swyy - swy * swy / sw if weighted else state_ymoments.m2[0]
        r2 = 1.0 - rss / tss if tss > 0 else np.nan
    else:
        rss = state_rss
        cov = R_inv @ R_inv.T
        ybar = swy / sw if weighted else state_ysum / n
        llnull = (sw if weighted else n) * (_xlogx(ybar) + _xlogx(1.0 - ybar))
        loglike = -state.obj / 2.0
        r2 = 1.0 - loglike / llnull if llnull < 0 else np.nan
    residual_sd = np.sqrt(rss / df) if df > 0 else np.nan
    return Solution(params=theta, cov=cov, rss=float(rss), r_squared=float(r2),
                    residual_sd=float(residual_sd), loglike=float(loglike),
                    iterations=int(iterations), converged=bool(converged),
                    log_weights=float(logw) if objective == "squared" else 0.0)


def _xlogx(v):
    return v * np.log(v) if v > 0 else 0.0
