"""Model capacity: training vs validation R per polynomial degree (the "degrees of freedom" figure).

    python recipes/capacity.py
    horovodrun -np 2 python recipes/capacity.py --set data.noise=1.0

Noisy samples of a cubic are split at random into training and validation parts; a
polynomial of each degree is solved exactly on the training part. Training R can only fall
as the degree grows; validation R falls until the model has the capacity of the truth,
then rises as extra degrees of freedom fit the noise.
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
    n: int = 40
    coefficients: typing.List[float] = dataclasses.field(default_factory=lambda: [1.0, -2.0, 0.0, 0.5])
    noise: float = 0.5
    validation: float = 0.5
    seed: int = 0

    def validate(self):
        config.at_least("data.n", self.n, 2, MAX_N)
        if not self.coefficients:
            raise ValueError("data.coefficients must list at least one coefficient, got []")
        config.finite("data.noise", self.noise, low=0.0)
        config.fraction("data.validation", self.validation)


@dataclasses.dataclass
class CapacityConfig(training.RecipeConfig):
    data: Data = dataclasses.field(default_factory=Data)
    degrees: typing.List[int] = dataclasses.field(default_factory=lambda: list(range(0, 13)))

    def validate(self):
        # the same split capacity_curve makes: round(validation * n) samples held out
        n_train = self.data.n - int(round(self.data.validation * self.data.n))
        config.listed("degrees", self.degrees,
                      lambda d: config.at_least("degrees: each degree", d, 0, n_train - 1))


CONFIG = CapacityConfig


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    # Horovod: initialise (a no-op in a plain process).
    dist.init()
    # Horovod: rank 0 alone creates the run folder and writes into it.
    run = runs.start("capacity", cfg, args)

    d = cfg.data
    data = synthetic.polynomial(d.n, d.coefficients, noise=d.noise, seed=d.seed)
    # Exact solves of a few dozen points take milliseconds: every rank computes the same
    # curve, nothing is sharded.
    curve = bwkeras.regression.capacity_curve(data.x, data.y, cfg.degrees,
                                              validation=d.validation, seed=d.seed)
    table = [{"degree": int(deg), "parameters": int(row.n_params), "training R (MSE)": row.train_mse,
              "validation R (MSE)": row.validation_mse} for deg, row in curve.iterrows()]
    best = int(curve["validation_mse"].idxmin())

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        plots.capacity_curve(curve.index, curve["train_mse"], curve["validation_mse"],
                             loss_label="R: mean squared error (y units²)",
                             path=run.plot_path("capacity"))
        run.write_metrics({"best_degree": best, "true_degree": len(d.coefficients) - 1,
                           "results": table})
        run.write_report("Capacity: training vs validation R",
                         tables=[(f"Exact polynomial fits (true degree {len(d.coefficients) - 1}, "
                                  f"best validation degree {best})", table)],
                         plots=[run.plot_path("capacity")])
        print(report.markdown_table(table))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
