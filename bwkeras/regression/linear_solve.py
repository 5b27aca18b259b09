"""Exact least squares for models linear in their parameters, by orthogonal factorisation.

    y = theta_0 + X theta_1:  (intercept=True)      or   y = X theta  (intercept=False)

The rows stream through an incremental Householder QR of the centred and scaled design,
[1, (X - mu) / s, (y - mu_y) / s_y], so memory stays O(p^2) beyond one block; the normal
equations (which square the condition number) are never formed. Under a launcher each
rank factorises its own shard and the R factors are stacked and factorised once more, so
every rank gets the result of one process on all the data.

Centring and scaling is an exact change of variables, y = mu_y + s_y (c_0 + sum_j c_j
(x_j - mu_j) / s_j); the solution and its covariance map back through a fixed linear map.
It matters only for rounding: it removes the near-collinearity of raw polynomial or
calendar-year columns with the intercept (Wampler, Longley). mu and s come from the first
block (every rank's first block under a launcher): any values make the map exact, and a
representative block makes it well conditioned.

`least_squares` is the public entry point for other linear-in-parameters models (AR(p)
builds the lag matrix and calls it with names "c", "phi_1", ...).
"""
import itertools
from dataclasses import replace

import numpy as np

from .blocks import BlockSource, StreamProgress
from .collective import Reducer
from .result import Solution
from .streaming import IncrementalQR, Moments

_EPS = np.finfo(np.float64).eps


def _default_prepare(k):
    def prepare(x, offset):
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != k:
            raise ValueError(f"x must have shape (n, {k}) for {k} regressor column(s), got {x.shape}")
        return x
    return prepare


def _names_shown(names):
    return str(names) if len(names) <= 8 else f"[{', '.join(map(repr, names[:3]))}, ..., " \
        f"{names[-1]!r}]"


def check_param_names(param_names):
    names = list(param_names)
    if not names:
        raise ValueError("param_names is empty: a model needs at least one parameter")
    if not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"param_names must be non-empty strings, got {names!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"param_names repeat: {names}")
    return names


def least_squares(x, y=None, *, param_names, intercept=True, design=None, prepare_x=None,
                  batch_size=None, distributed=None, rcond=None, verbose="auto",
                  sample_weight=None):
    """Least-squares fit of y on the design built from x; returns a FitResult.

    x, y: arrays (split into blocks of `batch_size` rows), or y=None and x a tf.data.Dataset
    or iterable of (x_batch, y_batch) pairs, streamed once (one-shot iterators are fine).
    param_names: one name per parameter, the intercept's first when intercept=True.
    design: optional callable mapping a validated x block to its design columns (no
    intercept column), e.g. powers of x; default: x itself, shape (n, k).
    prepare_x: optional callable (x_block, row_offset) -> validated x block.
    distributed: None (reduce over ranks under a launcher), True or False.
    rcond: relative singular-value cut-off of the equilibrated design below which it is
    rank-deficient (ValueError); default max(n, p) * machine epsilon, as numpy.linalg.lstsq.
    verbose: report rows read on stderr (rank 0): True, False, or "auto" (streamed data only).
    sample_weight: weights w_i >= 0 for arrays x, y (a stream carries them as a third
    element of each batch): weighted least squares, min sum_i w_i (y_i - f_i)^2, as
    statsmodels' WLS (rss and r_squared are the weighted ones; n_obs counts rows).
    """
    names = check_param_names(param_names)
    p = len(names)
    k = p - int(bool(intercept))
    prepare = prepare_x or _default_prepare(k)
    build = design or (lambda block: block)
    reducer = Reducer(distributed)

    state = {}

    def local_pass():
        source = BlockSource(x, y, prepare_x=prepare, batch_size=batch_size,
                             sample_weight=sample_weight)
        if source.in_memory and not reducer.active and source.n_rows < p:
            # known before the design and the (p+1)^2 factor are allocated
            raise ValueError(f"{source.n_rows} observation(s) cannot determine {p} parameters "
                             f"{_names_shown(names)}: need at least {p}")
        StreamProgress.for_source(source, "least squares (QR)", verbose)
        blocks = ((_design_block(build, xb, k, names, intercept), yb, wb)
                  for xb, yb, wb in source.weighted())
        if source.in_memory:
            # Arrays: centre and scale by a strided sample of all rows (sorted data too).
            xs, ys = source.sample()
            state["blocks"] = blocks
            return Moments.of(np.column_stack([_design_block(build, xs, k, names, intercept), ys])).pack()
        first = next(blocks, None)
        state["blocks"] = blocks if first is None else itertools.chain([first], blocks)
        if first is None:
            return Moments(k + 1).pack()
        return Moments.of(np.column_stack([first[0], first[1]])).pack()



    first_moments = reducer.run(local_pass)
    shift = Moments.unpack_all(reducer.gather_rows(first_moments))
    mu, scale = _centre_and_scale(shift, intercept)

    def accumulate():
        qr = IncrementalQR(p + 1)
        ymoments = Moments(1)
        any_weights = log_weights = 0.0
        for D, yb, wb in state["blocks"]:
            Z = (np.column_stack([D, yb]) - mu) / scale
            if intercept:
                Z = np.column_stack([np.ones(len(yb)), Z])
            if wb is not None:
                Z = Z * np.sqrt(wb)[:, None]  # rows of sqrt(w) [1, X, y]: weighted LS
                any_weights = 1.0
                log_weights += np.log(wb[wb > 0]).sum()
            qr.add(Z)
            ymoments.add(yb)
        return qr.R, ymoments.pack(), np.array([any_weights, log_weights])

    R_local, ypack, weight_stats = reducer.run(accumulate)
    weight_stats = reducer.sum(weight_stats)
    weighted = weight_stats[0] > 0
    R = reducer.broadcast(IncrementalQR.combine(reducer.gather_rows(R_local), p + 1))
    ystats = Moments.unpack_all(reducer.gather_rows(ypack))
    n = int(ystats.n)
    if n == 0:
        raise ValueError("the data are empty: need at least one (x, y) sample")
    if n < p:
        raise ValueError(
            f"{n} observation(s) cannot determine {p} parameters {_names_shown(names)}: need "
            f"at least {p}"
        )
    solution = _solve_from_r(R, n, names, intercept, mu, scale, ystats, rcond, weighted)
    solution = replace(solution, log_weights=float(weight_stats[1]))
    solution = Solution.unpack(reducer.broadcast(solution.pack()), p)
    return solution.fit_result(names, n, method="qr", k_constant=int(bool(intercept)))


def _design_block(build, xb, k, names, intercept):
    D = np.asarray(build(xb), dtype=np.float64)
    if D.ndim == 1:
        D = D[:, None]
    if D.shape != (xb.shape[0], k):
        raise ValueError(
            f"design has shape {D.shape}, expected ({xb.shape[0]}, {k}) for parameters {names}"
            f"{' (first one the intercept)' if intercept else ''}"
        )
    if not np.isfinite(D).all():
        raise ValueError("the design matrix overflows float64 (inf/NaN): rescale x or lower the degree")
    return D


def _centre_and_scale(moments, intercept):
    """mu and s for the columns [X, y] from the (first-block) moments."""
    mean = np.where(np.isfinite(moments.mean), moments.mean, 0.0)
    var = np.where(np.isfinite(moments.variance), moments.variance, 0.0)
    if intercept:
        mu, s = mean, np.sqrt(var)
    else:
        # Without an intercept column a shift is not a change of variables: scale only.
        mu, s = np.zeros_like(mean), np.sqrt(var + mean ** 2)
    s = np.where((s > 0) & np.isfinite(s), s, 1.0)
    return mu, s


def rank_check(R_design, names, n, rcond=None):
    """ValueError naming the parameters involved when R (p x p) is numerically singular."""
    p = R_design.shape[1]
    norms = np.linalg.norm(R_design, axis=0)
    zero = [names[j] for j in range(p) if norms[j] == 0]
    if zero:
        raise ValueError(
            f"the design is rank-deficient: the column(s) of parameter(s) {zero} are all zero "
            f"(or constant, when the model has an intercept); remove them"
        )
    E = R_design / norms
    _, sv, vt = np.linalg.svd(E)
    tol = (max(n, p) * _EPS) if rcond is None else float(rcond)
    if sv[-1] <= tol * sv[0]:
        rank = int((sv > tol * sv[0]).sum())
        null = vt[-1]
        involved = [names[j] for j in range(p) if abs(null[j]) > 0.1 * np.abs(null).max()]
        # Columns whose sizes differ by many orders of magnitude: the likelier cause is the
        # data's scale, not a real dependence.
        spread = float(norms.max() / norms.min()) if np.isfinite(norms).all() else np.inf
        scaling = ("; if x or y span many orders of magnitude the data are badly scaled; "
                   "rescale x and y to values of order 1") if spread > 1e8 else ""
        raise ValueError(
            f"the design is rank-deficient (numerical rank {rank} < {p} parameters, condition "
            f"number {sv[0] / max(sv[-1], 1e-300):.3g} of the equilibrated design): parameters "
            f"{involved} are linearly dependent, e.g. duplicated or constant columns; remove one "
            f"of them{scaling}"
        )


def _solve_from_r(R, n, names, intercept, mu, scale, ystats, rcond, weighted=False):
    p = len(names)
    Rd, qty, r_res = R[:p, :p], R[:p, p], abs(R[p, p])
    rank_check(Rd, names, n, rcond)
    c = np.linalg.solve(Rd, qty)
    R_inv = np.linalg.solve(Rd, np.eye(p))
    df = n - p
    rss_scaled = r_res ** 2
    sigma2 = rss_scaled / df if df > 0 else np.nan
    cov_c = sigma2 * (R_inv @ R_inv.T)

    # Map back: y = mu_y + s_y * (c0 + sum_j c_j (x_j - mu_j) / s_j).
    mu_x, mu_y = mu[:-1], mu[-1]
    s_x, s_y = scale[:-1], scale[-1]
    A = np.zeros((p, p))
    offset = np.zeros(p)
    if intercept:
        A[0, 0] = s_y
        A[0, 1:] = -s_y * mu_x / s_x
        A[np.arange(1, p), np.arange(1, p)] = s_y / s_x
        offset[0] = mu_y
    else:
        A[np.arange(p), np.arange(p)] = s_y / s_x
    theta = A @ c + offset
    cov = A @ cov_c @ A.T
    rss = s_y ** 2 * rss_scaled
    if weighted:
        # sum w (y - ybar_w)^2 (with an intercept; sum w y^2 without), as statsmodels' WLS:
        # the y column's squared norm beyond its projection on the sqrt(w) column.
        tss = s_y ** 2 * float(np.sum(R[int(bool(intercept)):, p] ** 2))
    else:
        tss = float(ystats.m2[0]) if intercept else float(ystats.m2[0] + ystats.n * ystats.mean[0] ** 2)
    r2 = 1.0 - rss / tss if tss > 0 else np.nan
    residual_sd = np.sqrt(rss / df) if df > 0 else np.nan
    return Solution(params=theta, cov=cov, rss=float(rss), r_squared=float(r2),
                    residual_sd=float(residual_sd))
