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

Convergence is Bates and Watts' relative offset, ||Q^T r|| / ||r|| <= tolerance (the
residual is orthogonal to the tangent plane, not merely "the step got small"), or, when
rounding hides further progress, the point where even the full Gauss-Newton step would
lower R by less than R's own rounding error (64 eps R); that last step is still taken.
"""
import warnings

import numpy as np
import tensorflow as tf

from .._checks import choice, integer, real
from .blocks import BlockSource, StreamProgress
from .collective import Reducer
from .linear_solve import rank_check
from .result import Solution
from .streaming import IncrementalQR, Moments

OBJECTIVES = ("squared", "bernoulli")
_EPS = np.finfo(np.float64).eps
_CLIP = 1e-15  # fitted probabilities are kept in [1e-15, 1 - 1e-15] (finite log-likelihood)


class ConvergenceWarning(UserWarning):
    """An iterative solve stopped before meeting its convergence criterion."""


def _pieces(theta, shapes):
    out, i = [], 0
    for shape in shapes:
        size = shape[0] if shape else 1
        out.append(np.asarray(theta[i:i + size], dtype=np.float64).reshape(shape))
        i += size
    return out


def block_jacobian(function, shapes, x, theta):
    """f(x; theta) and its Jacobian d f_i / d theta_j (n x p), float64, by reverse-mode
    autodiff in one pass: each row gets its own copy of the parameters, so the gradient
    of sum_i f_i with respect to row i's copy is row i of the Jacobian."""
    n = x.shape[0]
    tiled = [tf.constant(np.broadcast_to(piece, (n,) + piece.shape).copy())
             for piece in _pieces(theta, shapes)]
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        for t in tiled:
            tape.watch(t)
        f = function(xt, tiled)
    grads = tape.gradient(f, tiled, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    J = np.concatenate([np.reshape(g.numpy(), (n, -1)) for g in grads], axis=1)
    return np.reshape(f.numpy(), (n,)), J


def block_values(function, shapes, x, theta):
    f = function(tf.constant(x), [tf.constant(p) for p in _pieces(theta, shapes)])
    return np.reshape(f.numpy(), (x.shape[0],))


class _Pass:
    """Sums over all rows (and ranks) at one parameter vector."""

    def __init__(self, obj, R=None, rss=None, n=None, ysum=None, ymoments=None):
        self.obj, self.R, self.rss, self.n, self.ysum, self.ymoments = obj, R, rss, n, ysum, ymoments


def _weights(objective, f, y):
    """Weighted residuals' ingredients: (objective terms, residual, 1/sqrt(V))."""
    if objective == "squared":
        r = y - f
        return r * r, r, None
    mu = np.clip(f, _CLIP, 1.0 - _CLIP)
    dev = -2.0 * (y * np.log(mu) + (1.0 - y) * np.log1p(-mu))
    return dev, y - mu, 1.0 / np.sqrt(mu * (1.0 - mu))


def levenberg_marquardt(model, x, y=None, *, start=None, objective="squared", batch_size=None,
                        distributed=None, max_iterations=200, tolerance=1e-10, verbose="auto"):
    """Fit `model` (a RegressionModel: `_function`, `param_names`, `group_shapes`,
    `_prepare_x`, `_prepare_y`) from the parameter vector `start` (default: its current
    parameters). Returns a FitResult; does not modify the model. verbose: report rows read
    per pass over streamed data on stderr (True, False or "auto": streamed data only)."""
    choice("objective", objective, OBJECTIVES)
    max_iterations = integer("max_iterations", max_iterations, minimum=1)
    tolerance = real("tolerance", tolerance, 0, 1, low_open=True, high_open=True)
    names = model.param_names
    p = len(names)
    shapes = model.group_shapes
    theta = np.asarray(model._param_vector() if start is None else start, dtype=np.float64).ravel()
    if theta.shape != (p,) or not np.isfinite(theta).all():
        raise ValueError(f"starting values must be {p} finite numbers for {names}, got {theta.tolist()}")

    reducer = Reducer(distributed)
    holder = {}

    def make_source():
        source = BlockSource(x, y, prepare_x=model._prepare_x, prepare_y=model._prepare_y,
                             batch_size=batch_size)
        source.require_reiterable("a nonlinear solve")
        StreamProgress.for_source(source, "Levenberg-Marquardt", verbose)
        holder["source"] = source

    reducer.run(make_source)
    source = holder["source"]

    def local(theta_, jacobian):
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return local_sums(theta_, jacobian)

    def local_sums(theta_, jacobian):
        qr = IncrementalQR(p + 1) if jacobian else None
        obj = rss = ysum = 0.0
        n = 0
        ymoments = Moments(1)
        for xb, yb in source:
            if jacobian:
                f, J = block_jacobian(model._function, shapes, xb, theta_)
            else:
                f, J = block_values(model._function, shapes, xb, theta_), None
            if not np.isfinite(f).all():
                return np.inf, None, None
            terms, r, w = _weights(objective, f, yb)
            obj += terms.sum()
            n += len(yb)
            if jacobian:
                if not np.isfinite(J).all():
                    raise ValueError(
                        f"the model's Jacobian is not finite at {dict(zip(names, theta_.tolist()))}; "
                        f"choose other starting values"
                    )
                rss += (r * r).sum()
                ysum += yb.sum()
                ymoments.add(yb)
                if w is not None:
                    J, r = J * w[:, None], r * w
                qr.add(np.column_stack([J, r]))
        stats = np.array([obj, rss, n, ysum])
        return obj, stats, (qr.R if jacobian else None, ymoments.pack())

    def full_pass(theta_):
        obj, stats, extra = reducer.run(local, theta_, True)
        flag = reducer.sum([0.0 if np.isfinite(obj) else 1.0])
        if flag[0] > 0:
            return _Pass(np.inf)
        total = reducer.sum(stats)
        # Rank 0's factor everywhere: every rank then takes the same decisions, even on
        # nodes whose BLAS would round the combining QR differently.
        R = reducer.broadcast(IncrementalQR.combine(reducer.gather_rows(extra[0]), p + 1))
        ym = Moments.unpack_all(reducer.gather_rows(extra[1]))
        return _Pass(total[0], R, total[1], int(total[2]), total[3], ym)

    def objective_pass(theta_):
        obj, _, _ = reducer.run(local, theta_, False)
        total = reducer.sum([obj if np.isfinite(obj) else np.inf])
        return float(total[0])

    current = full_pass(theta)
    if not np.isfinite(current.obj):
        raise ValueError(
            f"the model is not finite at the starting values {dict(zip(names, theta.tolist()))} "
            f"(e.g. exp overflow or log of a negative number); choose other starting values"
        )
    n = current.n
    if n == 0:
        raise ValueError("the data are empty: need at least one (x, y) sample")
    if n < p:
        raise ValueError(f"{n} observation(s) cannot determine {p} parameters {names}: need at least {p}")

    def pieces_of(state):
        RJ, qtr, rperp = state.R[:p, :p], state.R[:p, p], abs(state.R[p, p])
        return RJ, qtr, rperp

    def offset_ok(state):
        _, qtr, _ = pieces_of(state)
        g = np.linalg.norm(qtr)
        exact = state.obj <= (64 * _EPS) ** 2 * max(state.ymoments.m2[0] + n * state.ymoments.mean[0] ** 2, 1e-300)
        return g <= tolerance * np.sqrt(state.obj) or exact

    RJ, qtr, rperp = pieces_of(current)
    D = np.linalg.norm(RJ, axis=0)
    D = np.where(D > 0, D, 1.0)
    lam, nu = 1e-3, 2.0
    accepted = 0
    converged = offset_ok(current)
    message = "converged: relative offset below tolerance" if converged else ""
    while not converged and accepted < max_iterations:
        RJ, qtr, rperp = pieces_of(current)
        if qtr @ qtr <= 64 * _EPS * current.obj:
            # Even the full Gauss-Newton step would lower R by less than R's own rounding:
            # acceptance tests cannot see further progress. Take that step if it does not
            # make R worse (it polishes the parameters) and stop: optimal to working precision.
            d = reducer.broadcast(np.linalg.lstsq(RJ, qtr, rcond=None)[0])
            if objective_pass(theta + d) <= current.obj * (1 + 64 * _EPS):
                theta = theta + d
                current = full_pass(theta)
                accepted += 1
            converged = True
            message = "converged: R minimal to working precision (Gauss-Newton step below rounding)"
            break
        A = np.vstack([RJ, np.sqrt(lam) * np.diag(D)])
        b = np.concatenate([qtr, np.zeros(p)])
        d = np.linalg.lstsq(A, b, rcond=None)[0]
        d = reducer.broadcast(d)
        predicted = qtr @ qtr - np.sum((qtr - RJ @ d) ** 2)
        trial = theta + d
        if np.array_equal(trial, theta):
            message = "stopped: the step is below floating-point resolution"
            break
        new_obj = objective_pass(trial)
        rho = (current.obj - new_obj) / predicted if predicted > 0 and np.isfinite(new_obj) else -1.0
        if rho > 1e-4:
            candidate = full_pass(trial)
            if not np.isfinite(candidate.obj):  # pragma: no cover - same values as objective_pass
                rho = -1.0
            else:
                theta, current = trial, candidate
                accepted += 1
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                D = np.maximum(D, np.linalg.norm(current.R[:p, :p], axis=0))
                if offset_ok(current):
                    converged = True
                    message = "converged: relative offset below tolerance"
                continue
        lam *= nu
        nu *= 2.0
        if lam > 1e20:
            message = "stopped: no step reduces the objective (damping overflow)"
            break
    # A singular Jacobian (parameters that cannot be told apart) is an error, not a
    # convergence problem: report it before anything else.
    rank_check(current.R[:p, :p], names, n)
    if not converged:
        if not message:
            message = f"stopped after max_iterations={max_iterations} steps"
        RJ, qtr, _ = pieces_of(current)
        warnings.warn(
            f"{type(model).__name__}.solve did not converge ({message}; relative offset "
            f"{np.linalg.norm(qtr) / max(np.sqrt(current.obj), 1e-300):.3g} > tolerance {tolerance:g}); "
            f"the result holds the last iterate: try other starting values or more iterations",
            ConvergenceWarning, stacklevel=3,
        )

    solution = _finish(current, theta, n, objective, p, accepted, converged)
    solution = Solution.unpack(reducer.broadcast(solution.pack()), p)
    method = "levenberg-marquardt" if objective == "squared" else "fisher-scoring"
    return solution.fit_result(names, n, method=method, message=message)


def _finish(state, theta, n, objective, p, iterations, converged):
    RJ = state.R[:p, :p]
    R_inv = np.linalg.solve(RJ, np.eye(p))
    df = n - p
    loglike = np.nan
    if objective == "squared":
        rss = state.obj
        sigma2 = rss / df if df > 0 else np.nan
        cov = sigma2 * (R_inv @ R_inv.T)
        tss = state.ymoments.m2[0]
        r2 = 1.0 - rss / tss if tss > 0 else np.nan
    else:
        rss = state.rss
        cov = R_inv @ R_inv.T
        ybar = state.ysum / n
        llnull = n * (_xlogx(ybar) + _xlogx(1.0 - ybar))
        loglike = -state.obj / 2.0
        r2 = 1.0 - loglike / llnull if llnull < 0 else np.nan
    residual_sd = np.sqrt(rss / df) if df > 0 else np.nan
    return Solution(params=theta, cov=cov, rss=float(rss), r_squared=float(r2),
                    residual_sd=float(residual_sd), loglike=float(loglike),
                    iterations=int(iterations), converged=bool(converged))


def _xlogx(v):
    return v * np.log(v) if v > 0 else 0.0
