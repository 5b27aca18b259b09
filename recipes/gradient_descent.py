"""The loss surface R(m, b) of a straight-line fit, its gradient field, and the paths of GD, SGD and mini-batch SGD.

    python recipes/gradient_descent.py
    horovodrun -np 2 python recipes/gradient_descent.py --set train.learning_rate=0.05

R(m, b) is the mean squared error of y = m x + b on data with known truth. Contours show
R, arrows the direction of steepest descent -grad R, and the lines the (m, b) iterates of
full-batch gradient descent, SGD (batch of 1) and mini-batch SGD, all started from the
same point and trained with Keras `fit`. Under Horovod every step averages the ranks'
gradients, so the paths are those of the global batch.
"""
import dataclasses

import numpy as np

import bwkeras
from bwkeras import config, plots, report, runs, training
from bwkeras import distributed as dist
from bwkeras.data import synthetic
from recipes import args as recipe_args


MAX_N = 10 ** 8  # samples of synthetic data: 800 MB per float64 column


@dataclasses.dataclass
class Data(config.Config):
    n: int = 100
    m: float = 2.0
    b: float = 1.0
    noise: float = 0.3
    seed: int = 0

    def validate(self):
        config.at_least("data.n", self.n, 2, MAX_N)
        config.finite("data.noise", self.noise, low=0.0)


@dataclasses.dataclass
class Start(config.Config):
    m: float = -1.0
    b: float = -1.5


@dataclasses.dataclass
class GradientDescentConfig(training.RecipeConfig):
    data: Data = dataclasses.field(default_factory=Data)
    start: Start = dataclasses.field(default_factory=Start)
    grid: int = 81                 # points per axis of the loss surface
    train: training.TrainConfig = dataclasses.field(default_factory=lambda: training.TrainConfig(
        epochs=5, batch_size=10, learning_rate=0.05, optimizer="sgd", lr_rule="none",
        shuffle=True))

    def validate(self):
        config.at_least("grid", self.grid, 2, 2001)  # grid x grid losses are evaluated
        training.refuse_elastic(self.train, "gradient_descent")


CONFIG = GradientDescentConfig


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    # Horovod: initialise (a no-op in a plain process).
    dist.init()
    # Horovod: rank 0 alone creates the run folder and writes into it.
    run = runs.start("gradient_descent", cfg, args)

    d = cfg.data
    data = synthetic.linear(d.n, m=d.m, b=d.b, noise=d.noise, seed=d.seed)
    # Horovod: each rank trains on its own shard (the exact solve reduces over ranks).
    x, y = dist.shard((data.x, data.y))
    optimum = bwkeras.regression.LinearRegression().solve(x, y)

    paths, table = {}, []
    for method, batch in (("GD", len(y)), ("SGD", 1), ("mini-batch", cfg.train.batch_size)):
        training.set_seed(cfg.train.seed)
        model = bwkeras.regression.LinearRegression()
        model.set_params({"m": cfg.start.m, "b": cfg.start.b})
        # Horovod: scale the learning rate by the rule (default "none": the same step size).
        lr = dist.scale_learning_rate(cfg.train.learning_rate, cfg.train.lr_rule)
        opt = cfg.train.make_optimizer(lr)
        # Horovod: average gradients over all ranks before every update.
        model.compile(optimizer=dist.DistributedOptimizer(opt), loss="mse")
        recorder = bwkeras.callbacks.ParameterPath(["m", "b"])
        model.fit(x, y, epochs=cfg.train.epochs, batch_size=batch, shuffle=cfg.train.shuffle,
                  # Horovod: broadcast rank 0's initial state and average the metrics.
                  callbacks=dist.callbacks() + [recorder], verbose=0)
        paths[f"{method} (batch {batch}, {len(recorder.path) - 1} steps)"] = np.array(recorder.path)
        # Horovod: R summed over every rank's shard.
        gap = bwkeras.regression.gap_to_optimum(model, x, y, optimum=optimum)
        table.append({"method": method, "batch": batch, "updates": len(recorder.path) - 1,
                      "m": model.params["m"], "b": model.params["b"],
                      "R / R_opt": gap.ratio})

    # The surface R(m, b) = mean (y - m x - b)^2 over the whole data, and its gradient.
    m_opt, b_opt = optimum.params["m"], optimum.params["b"]
    trail = np.concatenate(list(paths.values()))
    m_lo, m_hi = min(trail[:, 0].min(), m_opt) - 0.5, max(trail[:, 0].max(), m_opt) + 0.5
    b_lo, b_hi = min(trail[:, 1].min(), b_opt) - 0.5, max(trail[:, 1].max(), b_opt) + 0.5
    m_grid, b_grid = np.linspace(m_lo, m_hi, cfg.grid), np.linspace(b_lo, b_hi, cfg.grid)
    mm, bb = np.meshgrid(m_grid, b_grid)
    resid = data.y[None, None, :] - mm[..., None] * data.x[None, None, :] - bb[..., None]
    loss = np.mean(resid ** 2, axis=-1)
    d_dm = -2.0 * np.mean(resid * data.x[None, None, :], axis=-1)
    d_db = -2.0 * np.mean(resid, axis=-1)

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        plots.loss_surface(m_grid, b_grid, loss, grad=(d_dm, d_db), paths=paths,
                           optimum=(m_opt, b_opt), m_label="slope m", b_label="intercept b",
                           loss_label="R(m, b): mean squared error",
                           path=run.plot_path("loss_surface"))
        run.write_metrics({"optimum": {"m": m_opt, "b": b_opt}, "ranks": dist.size(),
                           "results": table})
        run.write_report("Gradient descent, SGD and mini-batches on the loss surface",
                         tables=[(f"After {cfg.train.epochs} epochs from (m, b) = "
                                  f"({cfg.start.m}, {cfg.start.b}); optimum "
                                  f"({m_opt:.4g}, {b_opt:.4g})", table)],
                         plots=[run.plot_path("loss_surface")])
        print(report.markdown_table(table))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
