"""The Levenberg-Marquardt iteration itself, on a problem seen only through passes.

A pass at theta returns a `Point`: the objective R(theta), the (p+1) x (p+1) R factor of
[J | r] (r = y - f, J = df/dtheta, both weighted), and `noise`, an estimate of how much
R(theta) itself is uncertain from floating-point rounding. The iteration never sees the
rows, so the same code serves arrays in memory, streamed data sets and Horovod ranks.

Ingredients, each from the literature and none tuned to a problem:

* Scaling (More 1978, as MINPACK's lmder): the damping term is lam ||D d||^2 with
  D_j = max over iterations of ||J_j|| (the Jacobian's column norms). A change of units of
  one parameter scales its column and D_j alike, so the path is the same in any units.
* Damping: Nielsen's (1999) update of lam from the gain ratio rho = actual / predicted
  reduction; a step is accepted when rho > 1e-4.
* Geodesic acceleration (Transtrum and Sethna 2012): the second directional derivative
  f_vv of the model along the velocity v (the LM step) gives a correction a with
  (J^T J + lam D^2) a = -J^T f_vv; the step is v + a/2, kept only when
  2 ||D a|| <= 0.75 ||D v|| (their alpha), otherwise the plain step v is tried.
* Convergence:
  - the relative offset (Bates and Watts 1981) ||Q^T r|| / ||r|| <= tolerance: the
    residual is orthogonal to the tangent plane (not merely "the step got small");
  - rounding: when even the full Gauss-Newton step would lower R by less than R's own
    rounding noise (64 eps R plus the propagated rounding of f), no acceptance test can
    see further progress; that step is taken if it does not make R worse and the solve
    is converged to working precision. This is what recognises exact and near-exact
    fits, whose residuals are pure rounding.
* Stopping short, with a reason (`stop_reason`): "iteration_budget" (max_iterations
  accepted steps), "step_too_small" (the step no longer changes theta in float64),
  "no_decrease" (the damping grew until the step is below rounding without R decreasing).
"""
from dataclasses import dataclass

import numpy as np

EPS = np.finfo(np.float64).eps
ACCEPT = 1e-4          # gain ratio above which a step is accepted (Nielsen 1999)
ALPHA = 0.75           # Transtrum and Sethna's bound on 2 ||D a|| / ||D v||
ROUNDING = 64 * EPS    # relative rounding of a sum of squares of moderate length
LAM0 = 1e-3            # Marquardt's initial damping, relative to D^2 = diag(J^T J)
LAM_MAX = 1e16         # relative damping at which a step is below float64 resolution

STOP_REASONS = {
    "relative_offset": "converged: relative offset below tolerance",
    "rounding": "converged: R minimal to working precision (the Gauss-Newton step would "
                "lower it by less than its rounding)",
    "iteration_budget": "stopped: the iteration budget (max_iterations) is spent",
    "step_too_small": "stopped: the step is below floating-point resolution",
    "no_decrease": "stopped: no step reduces the objective (the damping grew until the "
                   "step is below rounding)",
}
ADVICE = {
    "iteration_budget": "raise max_iterations, or start closer to the optimum",
    "step_too_small": "the model may be badly parametrised near this point (rescale or "
                      "reparametrise the parameters), or start elsewhere",
    "no_decrease": "the objective may not be smooth here or the start is far from the "
                   "optimum: try other starting values",
}


def default_budget(p):
    """Accepted steps allowed by default for p parameters: 1000 (p + 1).

    The budget is a guard against a solve that runs away, not a convergence rule: every
    accepted step lowers R, and a solve that is still lowering it should be let finish.
    The slowest NIST StRD case, MGH10 from NIST's first start, takes about 1600 steps (its
    path runs along a narrow curved valley where b1 shrinks to 1e-50 and back), 40% of its
    budget of 4000; MINPACK's 100 (p + 1) evaluations would stop it a quarter of the way."""
    return 1000 * (p + 1)


@dataclass
class Point:
    """One pass's sums: objective, R factor of [J | r], rounding noise of the objective."""

    obj: float
    R: np.ndarray
    noise: float = 0.0
    extra: object = None

    def pieces(self, p):
        return self.R[:p, :p], self.R[:p, p]


@dataclass
class Outcome:
    theta: np.ndarray
    point: Point
    iterations: int
    converged: bool
    stop_reason: str
    accelerated: int = 0
    evaluations: int = 0

    @property
    def message(self):
        return STOP_REASONS[self.stop_reason]


def _damped(RJ, qtr, D, lam):
    """The LM step v and the triangular factor T of [RJ; sqrt(lam) D] (for the
    acceleration, which solves the same matrix)."""
    p = len(qtr)
    A = np.vstack([RJ, np.sqrt(lam) * np.diag(D)])
    Q, T = np.linalg.qr(A)
    b = np.concatenate([qtr, np.zeros(p)])
    v = np.linalg.solve(T, Q.T @ b)
    return v, T


def iterate(evaluate, objective, curvature, theta, current, *, max_iterations, tolerance,
            acceleration=True, broadcast=lambda a: a):
    """Levenberg-Marquardt from `theta`, whose pass is `current` (a finite Point).

    evaluate(theta) -> Point (a full pass) or None when the model is not finite there;
    objective(theta) -> float (np.inf when not finite), a pass without the Jacobian;
    curvature(theta, v) -> J^T f_vv at theta along v (p-vector), or None when not finite;
    broadcast(array) -> rank 0's array (every rank takes the same step).
    """
    p = len(theta)
    theta = np.asarray(theta, dtype=np.float64).copy()
    RJ, qtr = current.pieces(p)
    D = np.linalg.norm(RJ, axis=0)
    D = np.where(D > 0, D, 1.0)
    lam, nu = LAM0, 2.0
    accepted = accelerated = evaluations = 0

    def offset_ok(point):
        _, g = point.pieces(p)
        return np.linalg.norm(g) <= tolerance * np.sqrt(point.obj)

    def outcome(converged, reason):
        return Outcome(theta, current, accepted, converged, reason, accelerated, evaluations)

    if offset_ok(current):
        return outcome(True, "relative_offset")
    while True:
        RJ, qtr = current.pieces(p)
        if qtr @ qtr <= ROUNDING * current.obj + current.noise:
            # Even the full Gauss-Newton step would lower R by less than R's own rounding:
            # no test on R can see further progress. The gradient Q^T r is still computed
            # to far better relative accuracy, so Gauss-Newton steps continue while they
            # shrink it and leave R unchanged within its rounding (an end-game on the
            # relative offset); the solve is then optimal to working precision.
            while accepted < max_iterations and not offset_ok(current):
                RJ, qtr = current.pieces(p)
                d = broadcast(np.linalg.lstsq(RJ, qtr, rcond=None)[0])
                if not np.isfinite(d).all() or np.array_equal(theta + d, theta):
                    break
                candidate = evaluate(theta + d)
                evaluations += 1
                if candidate is None or \
                        candidate.obj > current.obj * (1 + ROUNDING) + current.noise + candidate.noise or \
                        np.linalg.norm(candidate.pieces(p)[1]) >= np.linalg.norm(qtr):
                    break
                theta, current = theta + d, candidate
                accepted += 1
            return outcome(True, "rounding")
        if accepted >= max_iterations:
            return outcome(False, "iteration_budget")
        v, T = _damped(RJ, qtr, D, lam)
        v = broadcast(v)
        predicted = qtr @ qtr - np.sum((qtr - RJ @ v) ** 2)
        if np.array_equal(theta + v, theta):
            # The damped step no longer moves theta. If the undamped Gauss-Newton step does
            # not either, theta is the optimum to working precision; otherwise the damping
            # (a path the model makes hard) is what stopped the solve.
            d = broadcast(np.linalg.lstsq(RJ, qtr, rcond=None)[0])
            return outcome(bool(np.array_equal(theta + d, theta)),
                           "rounding" if np.array_equal(theta + d, theta) else "step_too_small")
        step, bent = v, False
        if acceleration and curvature is not None:
            # Transtrum and Sethna: a large acceleration means the linear model does not
            # hold over this step, so the step is refused (more damping), as a step that
            # fails to lower R would be.
            g = curvature(theta, v)
            evaluations += 1
            a = None if g is None else broadcast(-np.linalg.solve(T, np.linalg.solve(T.T, g)))
            if a is not None and np.isfinite(a).all() and \
                    2 * np.linalg.norm(D * a) <= ALPHA * np.linalg.norm(D * v):
                step, bent = v + 0.5 * a, True
            else:
                step = None
        taken = False
        if step is not None:
            trial = theta + step
            new_obj = objective(trial)
            evaluations += 1
            rho = (current.obj - new_obj) / predicted if predicted > 0 and np.isfinite(new_obj) else -1.0
            if rho > ACCEPT:
                candidate = evaluate(trial)
                evaluations += 1
                if candidate is not None:
                    theta, current = trial, candidate
                    accepted += 1
                    accelerated += int(bent)
                    lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                    nu = 2.0
                    D = np.maximum(D, np.linalg.norm(current.pieces(p)[0], axis=0))
                    taken = True
        if taken:
            if offset_ok(current):
                return outcome(True, "relative_offset")
            continue
        lam *= nu
        nu *= 2.0
        if lam > LAM_MAX:
            return outcome(False, "no_decrease")
