"""The tutorial's figures, drawn headless with matplotlib (Agg, no display needed).

Every function returns a `matplotlib.figure.Figure` (no pyplot global state, so
nothing leaks in long runs) and, given ``path=``, also saves it as a PNG through
`save`, which refuses a figure whose axes lack labels and writes atomically.

    fig = plots.loss_curves(history, path="plots/loss.png")
    fig.axes[0].get_xlabel()   # 'epoch'
"""
import math

import matplotlib

matplotlib.use("Agg", force=False)  # headless; a no-op if a backend is already in use
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
import numpy as np  # noqa: E402

from . import atomic  # noqa: E402

__all__ = [
    "new_figure", "save", "loss_curves", "fit_residuals", "prediction_intervals",
    "loss_surface", "capacity_curve",
    "accuracy_curves", "batch_size_effect",
    "forecast", "activations", "DEFAULT_SIZE", "DPI",
]

DEFAULT_SIZE = (10.0, 6.0)   # inches; at DPI this is 1000 x 600 pixels
DPI = 100


def new_figure(nrows=1, ncols=1, size=DEFAULT_SIZE, **subplot_kw):
    """A Figure with an Agg canvas and its axes (a single Axes or an array)."""
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=True, **subplot_kw)
    return fig, axes


def _check_labels(fig):
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.has_data() and not ax.images:
            continue
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            if not ax.get_ylabel() and not ax.get_xlabel():
                raise ValueError(f"colorbar axes {i} has no label")
            continue
        missing = [n for n, text in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if not text]
        if missing:
            raise ValueError(
                f"axes {i} ({ax.get_title() or 'untitled'}) has no {' and '.join(missing)} "
                "label; every plotted axis needs one"
            )


def save(fig, path, dpi=DPI):
    """Write `fig` to `path` as PNG, atomically, after checking every axis is labelled."""
    if not str(path).endswith(".png"):
        raise ValueError(f"plots are saved as .png files, got {path!r}")
    _check_labels(fig)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path


def _finish(fig, path):
    if path is not None:
        save(fig, path)
    return fig


def _history_dict(history):
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError(f"history must be a Keras History or a non-empty dict of lists, got {history!r}")
    return {k: np.asarray(v, dtype=float) for k, v in logs.items()}


def loss_curves(history, path=None, loss_label="loss", title="Training history",
                initial_epoch=0, log_scale=None):
    """Training (and validation) loss per epoch; other metrics on a second panel."""
    logs = _history_dict(history)
    loss_keys = [k for k in logs if k.endswith("loss")]
    other = [k for k in logs if k not in loss_keys and k not in ("lr", "learning_rate")]
    if not loss_keys:
        raise ValueError(f"history has no loss entries, only {sorted(logs)}")
    fig, axes = new_figure(1, 2 if other else 1)
    ax = axes[0] if other else axes
    for key in loss_keys:
        values = logs[key]
        epochs = initial_epoch + np.arange(1, len(values) + 1)
        ax.plot(epochs, values, marker="o", ms=3, label=key)
    finite = np.concatenate([logs[k][np.isfinite(logs[k])] for k in loss_keys])
    if log_scale is None:
        log_scale = finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() > 50
    if log_scale:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    if other:
        ax2 = axes[1]
        for key in other:
            values = logs[key]
            ax2.plot(initial_epoch + np.arange(1, len(values) + 1), values, marker="o", ms=3,
                     label=key)
        ax2.set_xlabel("epoch")
        ax2.set_ylabel("metric value")
        ax2.set_title("Metrics")
        ax2.grid(True, alpha=0.3)
        ax2.legend()
    return _finish(fig, path)


def fit_residuals(x, y, fits, path=None, x_label="x", y_label="y", title="Data and fits",
                  x_grid=None):
    """Data with fitted curves (top) and each fit's residuals y - f(x) (bottom).

    fits: {name: predictions at x} or {name: (predictions at x, predictions at x_grid)}
    for a smooth curve over `x_grid`.
    """
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {x.shape} and {y.shape}")
    if not fits:
        raise ValueError("fits must name at least one fitted curve")
    fig = Figure(figsize=(10.0, 8.0), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.scatter(x, y, s=12, color="0.35", label="data", zorder=3)
    order = np.argsort(x)
    for name, pred in fits.items():
        on_grid = None
        if isinstance(pred, tuple):
            at_x, on_grid = (np.asarray(p, dtype=float).ravel() for p in pred)
            if x_grid is None:
                raise ValueError(f"fit {name!r} gives grid predictions but x_grid is None")
        else:
            at_x = np.asarray(pred, dtype=float).ravel()
        if at_x.shape != x.shape:
            raise ValueError(f"fit {name!r} has {at_x.size} predictions for {x.size} points")
        if on_grid is not None:
            top.plot(np.asarray(x_grid, dtype=float).ravel(), on_grid, lw=2, label=name)
        else:
            top.plot(x[order], at_x[order], lw=2, label=name)
        bottom.scatter(x, y - at_x, s=10, label=name)
    bottom.axhline(0.0, color="k", lw=0.8)
    top.set_ylabel(y_label)
    top.set_xlabel(x_label)
    top.set_title(title)
    top.legend()
    top.grid(True, alpha=0.3)
    bottom.set_xlabel(x_label)
    bottom.set_ylabel(f"residual ({y_label})")
    bottom.grid(True, alpha=0.3)
    return _finish(fig, path)


_BAND_COLUMNS = ("mean", "mean_ci_lower", "mean_ci_upper", "obs_ci_lower", "obs_ci_upper")


def prediction_intervals(panels, path=None, title="Fits with confidence and prediction intervals",
                         alpha=0.05):
    """One panel per fit: the data, the fitted curve over a grid, its confidence band (of
    the mean f(x)) and its prediction band (of a new observation).

    panels: list of dicts with "title", "x", "y" (the data), "x_grid" and "frame" (the
    grid's `FitResult.get_prediction(x_grid).summary_frame(alpha)`, or any DataFrame with
    columns mean, mean_ci_lower/upper, obs_ci_lower/upper), optional "x_label", "y_label"
    and "sizes" (marker sizes, e.g. proportional to sample weights). alpha labels the
    bands (1 - alpha).
    """
    if not isinstance(panels, (list, tuple)) or not panels:
        raise ValueError(f"panels must be a non-empty list of dicts, got {panels!r}")
    ncols = min(2, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(6.0 * ncols, max(5.5, 4.5 * nrows)), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    level = f"{100 * (1 - alpha):g}%"
    for i, (ax, panel) in enumerate(zip(axes, panels)):
        missing = [k for k in ("title", "x", "y", "x_grid", "frame") if k not in panel]
        if missing:
            raise ValueError(f"panel {i} lacks {missing}; it has {sorted(panel)}")
        frame = panel["frame"]
        lacking = [c for c in _BAND_COLUMNS if c not in getattr(frame, "columns", ())]
        if lacking:
            raise ValueError(f"panel {i} ({panel['title']!r}): frame lacks columns {lacking}")
        grid = np.asarray(panel["x_grid"], dtype=float).ravel()
        x = np.asarray(panel["x"], dtype=float).ravel()
        y = np.asarray(panel["y"], dtype=float).ravel()
        if len(frame) != grid.size or x.shape != y.shape:
            raise ValueError(f"panel {i} ({panel['title']!r}): {len(frame)} predictions for "
                             f"{grid.size} grid points, or x {x.shape} and y {y.shape} differ")
        ax.fill_between(grid, frame["obs_ci_lower"], frame["obs_ci_upper"], color="C0",
                        alpha=0.15, label=f"{level} prediction interval")
        ax.fill_between(grid, frame["mean_ci_lower"], frame["mean_ci_upper"], color="C0",
                        alpha=0.35, label=f"{level} confidence interval")
        ax.plot(grid, frame["mean"], color="C0", lw=2, label="fit")
        sizes = panel.get("sizes")
        ax.scatter(x, y, s=12 if sizes is None else sizes, color="0.3", zorder=3, label="data")
        ax.set_title(panel["title"])
        ax.set_xlabel(panel.get("x_label", "x"))
        ax.set_ylabel(panel.get("y_label", "y"))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _finish(fig, path)


def loss_surface(m, b, loss, path=None, grad=None, paths=None, optimum=None,
                 m_label="slope m", b_label="intercept b", loss_label="R(m, b)",
                 title="Loss surface, gradient field and optimizer paths", quiver_every=None):
    """Contours of R(m, b) with the gradient field (arrows point downhill, -grad R) and
    the paths optimizers took through (m, b).

    m, b: 1-D grids; loss: array of shape (len(b), len(m)) (``np.meshgrid`` order);
    grad: (dR/dm, dR/db) on the same grid, else finite differences of `loss`;
    paths: {name: array of shape (steps, 2)} of (m, b) iterates; optimum: (m*, b*).
    """
    m = np.asarray(m, dtype=float)
    b = np.asarray(b, dtype=float)
    loss = np.asarray(loss, dtype=float)
    if loss.shape != (b.size, m.size):
        raise ValueError(
            f"loss must have shape (len(b), len(m)) = {(b.size, m.size)}, got {loss.shape}"
        )
    if grad is None:
        d_db, d_dm = np.gradient(loss, b, m)
    else:
        d_dm, d_db = (np.asarray(g, dtype=float) for g in grad)
        if d_dm.shape != loss.shape or d_db.shape != loss.shape:
            raise ValueError(f"grad arrays must have the loss's shape {loss.shape}")
    fig, ax = new_figure(size=(10.0, 8.0))
    mm, bb = np.meshgrid(m, b)
    positive = loss[np.isfinite(loss)]
    if positive.size and positive.min() > 0 and positive.max() / positive.min() > 100:
        levels = np.geomspace(positive.min(), positive.max(), 25)
        norm = matplotlib.colors.LogNorm(vmin=levels[0], vmax=levels[-1])
    else:
        levels, norm = 25, None
    cs = ax.contourf(mm, bb, loss, levels=levels, norm=norm, cmap="viridis", alpha=0.85)
    ax.contour(mm, bb, loss, levels=levels, norm=norm, colors="k", linewidths=0.3)
    cbar = fig.colorbar(cs, ax=ax)
    cbar.set_label(loss_label)
    step = quiver_every or max(1, min(m.size, b.size) // 15)
    sub = (slice(None, None, step), slice(None, None, step))
    gm, gb = -d_dm[sub], -d_db[sub]
    norm_g = np.hypot(gm, gb)
    norm_g[norm_g == 0] = 1.0
    ax.quiver(mm[sub], bb[sub], gm / norm_g, gb / norm_g, color="white", alpha=0.8,
              angles="xy", pivot="mid", label="-grad R (direction)")
    for name, trail in (paths or {}).items():
        trail = np.asarray(trail, dtype=float)
        if trail.ndim != 2 or trail.shape[1] != 2:
            raise ValueError(f"path {name!r} must have shape (steps, 2), got {trail.shape}")
        ax.plot(trail[:, 0], trail[:, 1], marker=".", ms=4, lw=1.5, label=name)
        ax.plot(trail[0, 0], trail[0, 1], "ko", ms=5)
    if optimum is not None:
        ax.plot(optimum[0], optimum[1], marker="*", color="red", ms=16, ls="none",
                label="exact optimum")
    ax.set_xlim(m.min(), m.max())
    ax.set_ylim(b.min(), b.max())
    ax.set_xlabel(m_label)
    ax.set_ylabel(b_label)
    ax.set_title(title)
    ax.legend(loc="upper right")
    return _finish(fig, path)


def capacity_curve(degrees, train, validation, path=None, loss_label="R (mean squared error)",
                   title="Capacity: training vs validation loss", log_scale=True):
    """Training and validation R against model capacity (polynomial degree)."""
    degrees = np.asarray(degrees)
    train = np.asarray(train, dtype=float)
    validation = np.asarray(validation, dtype=float)
    if not (degrees.shape == train.shape == validation.shape):
        raise ValueError(
            f"degrees, train and validation must have equal lengths, got "
            f"{degrees.shape}, {train.shape}, {validation.shape}"
        )
    fig, ax = new_figure()
    ax.plot(degrees, train, marker="o", label="training R")
    ax.plot(degrees, validation, marker="s", label="validation R")
    best = int(np.nanargmin(validation))
    ax.axvline(degrees[best], color="0.5", ls="--", label=f"best validation (degree {degrees[best]})")
    if log_scale and np.all(train[np.isfinite(train)] > 0) and np.all(validation[np.isfinite(validation)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("polynomial degree (model capacity)")
    ax.set_ylabel(loss_label)
    ax.set_title(title)
    ax.set_xticks(degrees)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _finish(fig, path)


def _series(values):
    """Floats, with None (a value that does not exist, e.g. a target never reached) as nan."""
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def accuracy_curves(curves, path=None, target=None, y_label="test accuracy",
                    title="Test accuracy while training"):
    """Accuracy per epoch (top row) and against training time (bottom row): one column
    per group (e.g. a learning-rate rule), one line per run in it (e.g. a batch size).

    curves: {group: {label: (seconds, accuracy)}}, both per epoch, seconds cumulative;
    target: an accuracy to mark with a dashed line.
    """
    if not curves or not all(curves.values()):
        raise ValueError("curves must map each group to at least one run's (seconds, accuracy)")
    labels = []
    for members in curves.values():
        labels.extend(label for label in members if label not in labels)
    colors = {label: f"C{i % 10}" for i, label in enumerate(labels)}
    n = len(curves)
    fig, axes = new_figure(2, n, size=(max(10.0, 4.5 * n + 1.0), 8.0), sharey=True)
    axes = np.asarray(axes).reshape(2, n)
    for col, (group, members) in enumerate(curves.items()):
        top, bottom = axes[0, col], axes[1, col]
        for label, (seconds, accuracy) in members.items():
            seconds, accuracy = _series(seconds), _series(accuracy)
            if seconds.shape != accuracy.shape:
                raise ValueError(f"{group} / {label}: {seconds.size} times for {accuracy.size} "
                                 "accuracies")
            epochs = np.arange(1, accuracy.size + 1)
            top.plot(epochs, accuracy, marker="o", ms=2.5, color=colors[label], label=label)
            bottom.plot(seconds, accuracy, marker="o", ms=2.5, color=colors[label], label=label)
        top.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        for ax, x_label in ((top, "epoch"), (bottom, "training time (s)")):
            if target is not None:
                ax.axhline(target, color="k", ls="--", lw=1, label=f"target {target:g}")
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.grid(True, alpha=0.3)
        top.set_title(str(group))
        top.legend(fontsize="small", loc="lower right")
    fig.suptitle(title)
    return _finish(fig, path)


def batch_size_effect(batch_sizes, panels, path=None,
                      title="Outcomes against the global batch size"):
    """Quantities against the batch size (log scale), one panel per quantity and one line
    per group (e.g. a learning-rate rule); a None or nan value (say, a target never
    reached) leaves a gap.

    panels: {y label: {group: values aligned with batch_sizes}}.
    """
    batch_sizes = np.asarray(batch_sizes, dtype=float)
    if batch_sizes.ndim != 1 or batch_sizes.size == 0 or np.any(batch_sizes <= 0):
        raise ValueError(f"batch_sizes must be a non-empty list of positive sizes, got {batch_sizes!r}")
    if not panels or not all(panels.values()):
        raise ValueError("panels must map each y label to at least one group's values")
    n = len(panels)
    fig, axes = new_figure(1, n, size=(max(10.0, 5.0 * n), 5.5))
    axes = np.atleast_1d(axes)
    for ax, (y_label, groups) in zip(axes, panels.items()):
        for group, values in groups.items():
            values = _series(values)
            if values.shape != batch_sizes.shape:
                raise ValueError(f"{y_label} / {group}: {values.size} values for "
                                 f"{batch_sizes.size} batch sizes")
            ax.plot(batch_sizes, values, marker="o", label=str(group))
        if not any(np.isfinite(_series(v)).any() for v in groups.values()):
            ax.text(0.5, 0.5, "no value at any batch size", transform=ax.transAxes,
                    ha="center", va="center", color="0.4")
        ax.set_xscale("log")
        ax.set_xlim(batch_sizes.min() / 1.5, batch_sizes.max() * 1.5)
        ax.set_xticks(batch_sizes)
        ax.set_xticklabels([f"{b:g}" for b in batch_sizes])
        ax.minorticks_off()
        ax.set_xlabel("global batch size")
        ax.set_ylabel(y_label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(title)
    return _finish(fig, path)

def forecast(t, truth, forecasts, path=None, t_label="time", y_label="value",
             title="Forecasts against the truth", t_split=None):
    """The true series and each model's forecast; `t_split` marks where testing begins.

    forecasts: {name: values aligned with t} or {name: (t_f, values)}.
    """
    t = np.asarray(t, dtype=float).ravel()
    truth = np.asarray(truth, dtype=float).ravel()
    if t.shape != truth.shape:
        raise ValueError(f"t and truth must have the same length, got {t.shape} and {truth.shape}")
    series = []
    for name, values in forecasts.items():
        if isinstance(values, tuple):
            tf_, vf = (np.asarray(v, dtype=float).ravel() for v in values)
        else:
            tf_, vf = t, np.asarray(values, dtype=float).ravel()
        if tf_.shape != vf.shape:
            raise ValueError(f"forecast {name!r}: {tf_.size} times for {vf.size} values")
        series.append((name, tf_, vf))
    if t_split is None:
        fig, ax = new_figure(size=(12.0, 6.0))
        panels = [ax]
    else:
        # The whole series above; below, the test period alone, where the forecasts differ.
        fig, (top, ax) = new_figure(2, 1, size=(12.0, 8.0), height_ratios=(1, 1.4))
        top.plot(t, truth, color="k", lw=1.5, label="truth")
        top.axvspan(t_split, t.max(), color="0.85", label="test period")
        top.set_xlabel(t_label)
        top.set_ylabel(y_label)
        top.set_title(title)
        top.grid(True, alpha=0.3)
        top.legend(loc="upper left")
        panels = [ax]
    if t_split is None:
        ax.plot(t, truth, color="k", lw=2, label="truth")
    else:
        test = t >= t_split
        ax.plot(t[test], truth[test], color="k", lw=2, marker="o", ms=3, label="truth")
    for name, tf_, vf in series:
        shown = tf_ >= t_split if t_split is not None else slice(None)
        ax.plot(tf_[shown], vf[shown], lw=1.5, alpha=0.9, label=name)
    ax.set_xlabel(t_label)
    ax.set_ylabel(y_label)
    ax.set_title(title if t_split is None else f"Test period from {t_split:g}")
    for panel in panels:
        panel.grid(True, alpha=0.3)
        panel.legend()
    return _finish(fig, path)


def _softmax_first(x):
    # the first output of softmax over the vector (x, 0, 1): a logistic curve shifted by the
    # other classes' mass, as a classifier's probability of class 0 when its logit is x
    z = np.stack([x, np.zeros_like(x), np.ones_like(x)])
    z = np.exp(z - z.max(axis=0))
    return z[0] / z.sum(axis=0)


DEFAULT_ACTIVATIONS = {
    "logistic 1/(1+exp(-x))": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "ReLU max(0, x)": lambda x: np.maximum(0.0, x),
    "arctan(x)": np.arctan,
    "softmax(x, 0, 1)[0]": _softmax_first,
}


def activations(path=None, functions=None, x=None, title="Activation functions"):
    """Activation functions side by side (default: logistic, ReLU, arctan, softmax)."""
    functions = dict(DEFAULT_ACTIVATIONS if functions is None else functions)
    x = np.linspace(-5.0, 5.0, 401) if x is None else np.asarray(x, dtype=float)
    n = len(functions)
    if n == 0:
        raise ValueError("functions must name at least one activation")
    ncols = min(n, 2)
    nrows = math.ceil(n / ncols)
    fig, axes = new_figure(nrows, ncols, size=(10.0, 4.0 * nrows))
    axes = np.atleast_1d(axes).ravel()
    for ax, (name, fn) in zip(axes, functions.items()):
        y = np.asarray(fn(x), dtype=float)
        ax.plot(x, y, lw=2)
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.axvline(0.0, color="0.6", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("input x")
        ax.set_ylabel("activation f(x)")
        ax.grid(True, alpha=0.3)
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title)
    return _finish(fig, path)
