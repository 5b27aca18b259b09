"""Every regression family on data with known truth: GD, SGD and mini-batch fits next to the exact solve.

    python recipes/least_squares.py
    horovodrun -np 2 python recipes/least_squares.py --set train.epochs=50

For each family (linear, polynomial, exponential, logistic) synthetic data are drawn from
known parameters; `solve` finds the exact least-squares optimum, and Keras `fit` trains
the same model by full-batch gradient descent, SGD (batch of 1) and mini-batch SGD. The
table lists each fit's parameters, R (the sum of squared residuals) and its gap to the
optimum, R_fit / R_opt. Under Horovod every rank holds a shard: solves and R reduce over
ranks, and the gradients of each step are averaged.
"""
import dataclasses
import typing

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
    data: Data = dataclasses.field(default_factory=Data)
    train: training.TrainConfig = dataclasses.field(default_factory=lambda: training.TrainConfig(
        epochs=30, batch_size=16, learning_rate=0.02, optimizer="sgd", lr_rule="none"))

    def validate(self):
        config.listed("families", self.families,
                      lambda f: config.one_of("families:", f, FAMILY_NAMES))


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


CONFIG = LeastSquaresConfig


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    unknown = [f for f in cfg.families if f not in FAMILIES]
    if unknown:
        raise SystemExit(f"least_squares: unknown families {unknown}; choose from {list(FAMILIES)}")
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

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        paths = []
        for family, data, fits in figures:
            paths.append(run.plot_path(f"fit_{family}"))
            plots.fit_residuals(data.x, data.y, fits, x_label="x", y_label="y",
                                title=f"{family}: exact solve and trained fits", path=paths[-1])
        run.write_metrics({"ranks": dist.size(), "results": table})
        run.write_report("Least squares: regression families, exact and trained",
                         tables=[("Parameters, R and the gap to the optimum", table)], plots=paths)
        print(report.markdown_table(table))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
