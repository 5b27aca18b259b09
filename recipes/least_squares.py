"""Every regression family on data with known truth: GD, SGD and mini-batch fits next to the exact solve;
then a formula with two inputs, a weighted fit and a bounded fit, with their intervals.

    python recipes/least_squares.py
    horovodrun -np 2 python recipes/least_squares.py --set train.epochs=50
    python recipes/least_squares.py --set 'parametric=[bounded]'

For each family (linear, polynomial, exponential, logistic) synthetic data are drawn from
known parameters; `solve` finds the exact least-squares optimum, and Keras `fit` trains
the same model by full-batch gradient descent, SGD (batch of 1) and mini-batch SGD. The
table lists each fit's parameters, R (the sum of squared residuals) and its gap to the
optimum, R_fit / R_opt. Under Horovod every rank holds a shard: solves and R reduce over
ranks, and the gradients of each step are averaged.

`parametric` adds ParametricRegression fits (Levenberg-Marquardt) that the named families
cannot express, each drawn with its 95% confidence band (of the fitted curve) and
prediction band (of a new measurement), from `FitResult.get_prediction`:
  two_inputs  y = b1 - b2 x1 exp(-b3 x2), x an (n, 2) array (x2 at two levels);
  weighted    y = b1 (1 - exp(-b2 x)) with measurement errors that grow with x, weighted
              by 1 / sd^2 (the prediction band widens with the error);
  bounded     y = b1 exp(-b2 x) + b3 with a background b3 >= 0 whose true value is 0: on
              about half of all noisy draws the unbounded estimate would be negative,
              and then the bound binds (b3 = 0, no standard error) and the table's note
              and the panel's title say so.
"""
import dataclasses
import typing

import numpy as np

import bwkeras
from bwkeras import config, plots, report, runs, training
from bwkeras import distributed as dist
from bwkeras.data import synthetic
from recipes import args as recipe_args


MAX_N = 10 ** 8  # samples of synthetic data: 800 MB per float64 column


@dataclasses.dataclass
class Data(config.Config):
    n: int = 200
    noise: float = 0.1
    seed: int = 0

    def validate(self):
        config.at_least("data.n", self.n, 3, MAX_N)  # the quadratic has 3 parameters
        config.finite("data.noise", self.noise, low=0.0)


@dataclasses.dataclass
class LeastSquaresConfig(training.RecipeConfig):
    families: typing.List[str] = dataclasses.field(
        default_factory=lambda: ["linear", "polynomial", "exponential", "logistic"])
    parametric: typing.List[str] = dataclasses.field(
        default_factory=lambda: ["two_inputs", "weighted", "bounded"])
    data: Data = dataclasses.field(default_factory=Data)
    train: training.TrainConfig = dataclasses.field(default_factory=lambda: training.TrainConfig(
        epochs=30, batch_size=16, learning_rate=0.02, optimizer="sgd", lr_rule="none"))

    def validate(self):
        config.listed("families", self.families,
                      lambda f: config.one_of("families:", f, FAMILY_NAMES))
        training.refuse_elastic(self.train, "least_squares")


FAMILY_NAMES = ("linear", "polynomial", "exponential", "logistic")  # the keys of FAMILIES

# family name -> (data with known truth, a fresh model of that family, learning-rate factor:
# y = N exp(r x) has gradients ~ x exp(r x), steep enough that train.learning_rate diverges)
FAMILIES = {
    "linear": (lambda d: synthetic.linear(d.n, m=2.0, b=1.0, noise=d.noise, seed=d.seed),
               lambda: bwkeras.regression.LinearRegression(), 1.0),
    "polynomial": (lambda d: synthetic.polynomial(d.n, (1.0, -2.0, 0.5), noise=d.noise, seed=d.seed),
                   lambda: bwkeras.regression.PolynomialRegression(degree=2), 1.0),
    "exponential": (lambda d: synthetic.exponential(d.n, N=2.0, r=0.5, noise=d.noise, seed=d.seed),
                    lambda: bwkeras.regression.ExponentialRegression(), 0.05),
    "logistic": (lambda d: synthetic.logistic(d.n, a=0.5, b=2.0, noise=d.noise / 5, seed=d.seed),
                 lambda: bwkeras.regression.LogisticRegression(), 5.0),
}


def _two_inputs(d, rng):
    x = np.column_stack([rng.uniform(0.0, 3.0, d.n), rng.choice([0.5, 1.5], d.n)])
    y = 5.0 - 2.0 * x[:, 0] * np.exp(-0.7 * x[:, 1]) + rng.normal(scale=d.noise, size=d.n)
    model = bwkeras.regression.ParametricRegression(
        "b1 - b2*x1*exp(-b3*x2)", {"b1": 1.0, "b2": 1.0, "b3": 0.1}, inputs=("x1", "x2"),
        dtype="float64")
    return x, y, None, model, {}, {"b1": 5.0, "b2": 2.0, "b3": 0.7}


def _weighted(d, rng):
    x = rng.uniform(0.0, 4.0, d.n)
    sd = d.noise * (0.2 + x)                       # measurement error grows with x
    y = 3.0 * (1.0 - np.exp(-1.2 * x)) + rng.normal(size=d.n) * sd
    model = bwkeras.regression.ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 1.0, "b2": 1.0},
                                                    dtype="float64")
    return x, y, 1.0 / sd ** 2, model, {}, {"b1": 3.0, "b2": 1.2}


def _bounded(d, rng):
    x = rng.uniform(0.0, 5.0, d.n)
    y = 2.0 * np.exp(-0.8 * x) + rng.normal(scale=d.noise / 2, size=d.n)   # background 0
    model = bwkeras.regression.ParametricRegression(
        "b1*exp(-b2*x) + b3", {"b1": 1.0, "b2": 1.0, "b3": 0.1}, dtype="float64")
    return x, y, None, model, {"bounds": {"b3": (0.0, None)}}, {"b1": 2.0, "b2": 0.8, "b3": 0.0}


# name -> data with known truth, a model, solve options
PARAMETRIC = {"two_inputs": _two_inputs, "weighted": _weighted, "bounded": _bounded}


def parametric_fits(names, d):
    """Solve each named ParametricRegression example; return table rows and plot panels
    (data, grid, get_prediction(grid).summary_frame())."""
    rows, panels = [], []
    for name in names:
        rng = np.random.default_rng(d.seed)
        x, y, w, model, options, truth = PARAMETRIC[name](d, rng)
        # Horovod: each rank solves on its shard; the Levenberg-Marquardt sums reduce over ranks.
        xs, ys, ws = dist.shard((x, y, np.ones_like(y) if w is None else w))
        ws = None if w is None else ws
        result = model.solve(xs, ys, sample_weight=ws, **options)
        note = "; ".join(f"{k} held at its {side} bound" for k, side in result.active_bounds.items())
        rows.append({"family": f"{name}: {model.expression.text}", "method": "exact solve (LM)",
                     "parameters": ", ".join(f"{k}={v:.4g} ({result.bse[k]:.2g})"
                                             for k, v in result.params.items()),
                     "truth": ", ".join(f"{k}={v:g}" for k, v in truth.items()),
                     "R": result.rss, "note": note or "converged: " + result.stop_reason})
        if name == "two_inputs":   # one panel per level of x2, the curve along x1
            for level in (0.5, 1.5):
                grid = np.linspace(0.0, 3.0, 60)
                frame = result.get_prediction(np.column_stack([grid, np.full(60, level)])).summary_frame()
                at = x[:, 1] == level
                panels.append({"title": f"two inputs, x2 = {level:g}", "x": x[at, 0], "y": y[at],
                               "x_grid": grid, "frame": frame, "x_label": "x1"})
        else:
            grid = np.linspace(x.min(), x.max(), 60)
            # a new measurement at the grid has the error model's weight there
            new_w = None if w is None else 1.0 / (d.noise * (0.2 + grid)) ** 2
            frame = result.get_prediction(grid, sample_weight=new_w).summary_frame()
            title = f"{name}: " + (note or "no bound active") if name == "bounded" else name
            panels.append({"title": title, "x": x, "y": y, "x_grid": grid, "frame": frame,
                           "sizes": None if w is None else 60 * w / w.max() + 4})
    return rows, panels


CONFIG = LeastSquaresConfig


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    unknown = [f for f in cfg.families if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"least_squares: unknown families {unknown}; choose from {list(FAMILIES)}")
    unknown = [f for f in cfg.parametric if f not in PARAMETRIC]
    if unknown:
        raise SystemExit(f"least_squares: unknown parametric examples {unknown}; choose from "
                         f"{list(PARAMETRIC)}")
    # Horovod: initialise (a no-op in a plain process).
    dist.init()
    # Horovod: rank 0 alone creates the run folder and writes into it.
    run = runs.start("least_squares", cfg, args)

    table, figures = [], []
    for family in cfg.families:
        make_data, make_model, lr_factor = FAMILIES[family]
        data = make_data(cfg.data)
        # Horovod: each rank holds its shard; exact solves and R sum over all ranks.
        x, y = dist.shard((data.x, data.y))
        exact = make_model()
        optimum = exact.solve(x, y, **({} if exact.linear_in_parameters else {"start": "guess"}))
        rows = [{"family": family, "method": "truth",
                 "parameters": ", ".join(f"{k}={v:.4g}" for k, v in data.truth.items())},
                {"family": family, "method": "exact solve",
                 "parameters": ", ".join(f"{k}={v:.4g}" for k, v in exact.params.items()),
                 "R": optimum.rss, "R / R_opt": 1.0}]
        fits = {"exact solve": exact.predict_float64(data.x)}
        per_rank = len(y)
        for method, batch in (("GD", per_rank), ("SGD", 1), ("mini-batch", cfg.train.batch_size)):
            training.set_seed(cfg.train.seed)
            model = make_model()
            # Horovod: scale the learning rate by the rule (default "none": plain SGD steps).
            lr = dist.scale_learning_rate(cfg.train.learning_rate * lr_factor, cfg.train.lr_rule)
            opt = cfg.train.make_optimizer(lr)
            # Horovod: average gradients over all ranks before every update.
            model.compile(optimizer=dist.DistributedOptimizer(opt), loss="mse")
            model.fit(x, y, epochs=cfg.train.epochs, batch_size=batch, shuffle=cfg.train.shuffle,
                      # Horovod: broadcast rank 0's initial state and average the metrics.
                      callbacks=dist.callbacks(),
                      verbose=0)
            # Horovod: R of the trained parameters, summed over every rank's shard.
            gap = bwkeras.regression.gap_to_optimum(model, x, y, optimum=optimum)
            rows.append({"family": family, "method": f"{method} (batch {batch})",
                         "parameters": ", ".join(f"{k}={v:.4g}" for k, v in model.params.items()),
                         "R": gap.r_fit, "R / R_opt": gap.ratio})
            fits[method] = model.predict_float64(data.x)
        table += rows
        figures.append((family, data, fits))
    parametric_rows, panels = parametric_fits(cfg.parametric, cfg.data)

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        paths = []
        for family, data, fits in figures:
            paths.append(run.plot_path(f"fit_{family}"))
            plots.fit_residuals(data.x, data.y, fits, x_label="x", y_label="y",
                                title=f"{family}: exact solve and trained fits", path=paths[-1])
        tables = [("Parameters, R and the gap to the optimum", table)]
        if panels:
            paths.append(run.plot_path("parametric_intervals"))
            plots.prediction_intervals(panels, path=paths[-1],
                                       title="ParametricRegression: fits with 95% intervals")
            tables.append(("ParametricRegression: parameters (standard errors)", parametric_rows))
        run.write_metrics({"ranks": dist.size(), "results": table, "parametric": parametric_rows})
        run.write_report("Least squares: regression families, exact and trained",
                         tables=tables, plots=paths)
        print(report.markdown_table(table))
        if parametric_rows:
            print()
            print(report.markdown_table(parametric_rows))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
