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
* Bounds (lower <= theta <= upper, optional per parameter): a projected step with an
  active set, as in projected Levenberg-Marquardt (Kanzow, Yamashita and Fukushima
  2004). A parameter on a bound is held there while the gradient J^T r (or its LM step)
  points out of the box; the step solves the damped problem on the other columns and is
  projected onto the box; the gain ratio uses the projected step's predicted reduction.
  The relative offset and the rounding test use the residual's projection on the free
  columns only: at the solution r is orthogonal to them, and the held parameters'
  gradients point outward (the Karush-Kuhn-Tucker conditions). Without bounds every
  column is free and the iteration is exactly the unbounded one.
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
    held: np.ndarray = None       # bool per parameter: held on a bound at the solution

    @property
    def message(self):
        return STOP_REASONS[self.stop_reason]


def _damped(RJ, qtr, D, lam):
    """The LM step v and the triangular factor T of [RJ; sqrt(lam) D] (for the
    acceleration, which solves the same matrix)."""
    p = RJ.shape[1]
    A = np.vstack([RJ, np.sqrt(lam) * np.diag(D)])
    Q, T = np.linalg.qr(A)
    b = np.concatenate([qtr, np.zeros(p)])
    v = np.linalg.solve(T, Q.T @ b)
    return v, T


class Box:
    """lower <= theta <= upper (entries +-inf where a side is open)."""

    def __init__(self, lower, upper, p):
        self.lower = np.full(p, -np.inf) if lower is None else np.asarray(lower, dtype=np.float64)
        self.upper = np.full(p, np.inf) if upper is None else np.asarray(upper, dtype=np.float64)
        self.bounded = bool(np.isfinite(self.lower).any() or np.isfinite(self.upper).any())

    def project(self, theta):
        return np.minimum(np.maximum(theta, self.lower), self.upper)

    def clip_step(self, theta, step):
        """The step that lands on the projection of theta + step (the step itself when
        there are no bounds, so the unbounded path is not rounded twice)."""
        return self.project(theta + step) - theta if self.bounded else step

    def held(self, theta, RJ, qtr):
        """Parameters on a bound whose gradient J^T r points out of the box."""
        if not self.bounded:
            return np.zeros(len(theta), dtype=bool)
        g = RJ.T @ qtr
        at_lo, at_hi = theta <= self.lower, theta >= self.upper
        return (at_lo & at_hi) | (at_lo & (g <= 0)) | (at_hi & (g >= 0))

    def outward(self, theta, step, held):
        """Free parameters on a bound that `step` would push out of the box."""
        return ~held & (((theta <= self.lower) & (step < 0)) | ((theta >= self.upper) & (step > 0)))


def _free_step(box, theta, RJ, qtr, held, solve):
    """solve(columns) -> (step on those columns, extra) on the free columns; parameters
    that the step would push out through their bound join the held ones (at most p
    rounds). Returns (full step with zeros on held parameters, extra, held)."""
    p = len(theta)
    held = held.copy()
    while True:
        free = ~held
        v = np.zeros(p)
        if not free.any():
            return v, None, held
        vf, extra = solve(free)
        v[free] = vf
        out = box.outward(theta, v, held)
        if not out.any():
            return v, extra, held
        held |= out


def _projected_norm2(RJ, qtr, free):
    """||P_F Q^T r||^2: the squared norm of r's projection on the free columns of J."""
    if free.all():
        return float(qtr @ qtr)
    if not free.any():
        return 0.0
    Qf, _ = np.linalg.qr(RJ[:, free])
    g = Qf.T @ qtr
    return float(g @ g)


def iterate(evaluate, objective, curvature, theta, current, *, max_iterations, tolerance,
            acceleration=True, broadcast=lambda a: a, lower=None, upper=None):
    """Levenberg-Marquardt from `theta`, whose pass is `current` (a finite Point).

    evaluate(theta) -> Point (a full pass) or None when the model is not finite there;
    objective(theta) -> float (np.inf when not finite), a pass without the Jacobian;
    curvature(theta, v) -> J^T f_vv at theta along v (p-vector), or None when not finite;
    broadcast(array) -> rank 0's array (every rank takes the same step);
    lower, upper: bounds per parameter (None, or arrays with +-inf where open); theta must
    lie within them.
    """
    p = len(theta)
    theta = np.asarray(theta, dtype=np.float64).copy()
    box = Box(lower, upper, p)
    RJ, qtr = current.pieces(p)
    D = np.linalg.norm(RJ, axis=0)
    D = np.where(D > 0, D, 1.0)
    lam, nu = LAM0, 2.0
    accepted = accelerated = evaluations = 0

    def held_at(theta_, point):
        return box.held(theta_, *point.pieces(p))

    def reducible(theta_, point):
        """||Q_F^T r||^2 on the free columns F: the most a Gauss-Newton step can lower R."""
        RJ_, g = point.pieces(p)
        return _projected_norm2(RJ_, g, ~held_at(theta_, point))

    def offset_ok(theta_, point):
        return np.sqrt(reducible(theta_, point)) <= tolerance * np.sqrt(point.obj)

    def gauss_newton(theta_, RJ_, qtr_):
        def solve(free):
            return np.linalg.lstsq(RJ_[:, free], qtr_, rcond=None)[0], None
        d, _, _ = _free_step(box, theta_, RJ_, qtr_, box.held(theta_, RJ_, qtr_), solve)
        return box.clip_step(theta_, broadcast(d))

    def move(theta_, step):
        """theta + step, inside the box ((a - b) + b can round one unit past a bound)."""
        return box.project(theta_ + step) if box.bounded else theta_ + step

    def outcome(converged, reason):
        return Outcome(theta, current, accepted, converged, reason, accelerated, evaluations,
                       held=held_at(theta, current))

    if offset_ok(theta, current):
        return outcome(True, "relative_offset")
    while True:
        RJ, qtr = current.pieces(p)
        if reducible(theta, current) <= ROUNDING * current.obj + current.noise:
            # Even the full Gauss-Newton step would lower R by less than R's own rounding:
            # no test on R can see further progress. The gradient Q^T r is still computed
            # to far better relative accuracy, so Gauss-Newton steps continue while they
            # shrink it and leave R unchanged within its rounding (an end-game on the
            # relative offset); the solve is then optimal to working precision.
            while accepted < max_iterations and not offset_ok(theta, current):
                RJ, qtr = current.pieces(p)
                d = gauss_newton(theta, RJ, qtr)
                if not np.isfinite(d).all() or np.array_equal(theta + d, theta):
                    break
                candidate = evaluate(move(theta, d))
                evaluations += 1
                if candidate is None or \
                        candidate.obj > current.obj * (1 + ROUNDING) + current.noise + candidate.noise or \
                        np.sqrt(reducible(move(theta, d), candidate)) >= np.sqrt(reducible(theta, current)):
                    break
                theta, current = move(theta, d), candidate
                accepted += 1
            return outcome(True, "rounding")
        if accepted >= max_iterations:
            return outcome(False, "iteration_budget")
        v, T, held = _free_step(box, theta, RJ, qtr, box.held(theta, RJ, qtr),
                                lambda free: _damped(RJ[:, free], qtr, D[free], lam))
        v = broadcast(box.clip_step(theta, v))
        free = ~held
        predicted = qtr @ qtr - np.sum((qtr - RJ @ v) ** 2)
        if np.array_equal(theta + v, theta):
            # The damped step no longer moves theta. If the undamped Gauss-Newton step does
            # not either, theta is the optimum to working precision; otherwise the damping
            # (a path the model makes hard) is what stopped the solve.
            d = gauss_newton(theta, RJ, qtr)
            return outcome(bool(np.array_equal(theta + d, theta)),
                           "rounding" if np.array_equal(theta + d, theta) else "step_too_small")
        step, bent = v, False
        if acceleration and curvature is not None:
            # Transtrum and Sethna: a large acceleration means the linear model does not
            # hold over this step, so the step is refused (more damping), as a step that
            # fails to lower R would be.
            g = curvature(theta, v)
            evaluations += 1
            a = None
            if g is not None:
                a = np.zeros(p)
                a[free] = -np.linalg.solve(T, np.linalg.solve(T.T, g[free]))
                a = broadcast(a)
            if a is not None and np.isfinite(a).all() and \
                    2 * np.linalg.norm(D * a) <= ALPHA * np.linalg.norm(D * v):
                step, bent = box.clip_step(theta, v + 0.5 * a), True
            else:
                step = None
        taken = False
        if step is not None:
            trial = move(theta, step)
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
            if offset_ok(theta, current):
                return outcome(True, "relative_offset")
            continue
        lam *= nu
        nu *= 2.0
        if lam > LAM_MAX:
            return outcome(False, "no_decrease")
