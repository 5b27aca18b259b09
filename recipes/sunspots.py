"""Sunspots 1700-2008: persistence, AR(p) solved exactly, and SimpleRNN/LSTM/GRU trained data-parallel.

    python recipes/sunspots.py
    horovodrun -np 2 python recipes/sunspots.py --set train.epochs=100
    horovodrun -np 2 python recipes/sunspots.py --set model.model_parallel=2

Every model sees the same chronological split of the yearly series into windows of the
`lags` previous years and is scored on the same test years by its one-step-ahead RMSE, in
sunspot numbers. The networks train on standardised windows (scaler fitted on the training
years only); Horovod shards the training windows over the ranks. With model.model_parallel
= k the k ranks of each model group hold one network between them (each units/k of the
recurrent layer) and the windows are sharded over the N/k model groups.
"""
import dataclasses
import typing

import numpy as np

import bwkeras
from bwkeras import config, datasets, plots, report, runs, training
from bwkeras import distributed as dist
from recipes import args as recipe_args


YEARS = 309  # the bundled series, 1700-2008 (datasets.sunspots)


@dataclasses.dataclass
class Data(config.Config):
    lags: int = 9                 # years of history each forecast reads (AR order p)
    validation: float = 0.15      # fraction of the windows, after the training years
    test: float = 0.15            # the last fraction of the windows

    def validate(self):
        config.fraction("data.validation", self.validation)
        config.fraction("data.test", self.test)
        if self.validation + self.test >= 1.0:
            raise ValueError(f"data.validation + data.test must be < 1, got {self.validation!r} "
                             f"+ {self.test!r}")
        config.at_least("data.lags", self.lags, 1, YEARS - 1)
        # AR(p) is solved on the training windows: it needs more of them than parameters
        n_train = (YEARS - self.lags) * (1.0 - self.validation - self.test)
        if n_train < self.lags + 2:
            raise ValueError(f"data.lags={self.lags} leaves about {int(n_train)} training windows "
                             f"of the {YEARS} years, too few for AR({self.lags})")


@dataclasses.dataclass
class Model(config.Config):
    cells: typing.List[str] = dataclasses.field(default_factory=lambda: ["simple", "lstm", "gru"])
    units: int = 32
    model_parallel: int = 1       # ranks per model group (tensor parallelism); divides ranks

    def validate(self):
        config.listed("model.cells", self.cells,
                      lambda c: config.one_of("model.cells:", c, training.CELLS))
        config.at_least("model.units", self.units, 1)
        config.at_least("model.model_parallel", self.model_parallel, 1)


@dataclasses.dataclass
class SunspotsConfig(training.RecipeConfig):
    data: Data = dataclasses.field(default_factory=Data)
    model: Model = dataclasses.field(default_factory=Model)
    train: training.TrainConfig = dataclasses.field(default_factory=lambda: training.TrainConfig(
        epochs=60, batch_size=16, learning_rate=0.005, optimizer="adam"))

    def validate(self):
        training.check_model_parallel(self.train, self.model.model_parallel,
                                      {"model.units": self.model.units})


CONFIG = SunspotsConfig


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    k = cfg.model.model_parallel
    # Horovod: initialise (a no-op in a plain process) and pin one GPU per local rank; with
    # model.model_parallel = k > 1, lay the N ranks out as N/k model groups of k ranks.
    if k > 1:
        dist.init_model_parallel(k)
    else:
        dist.init()
    # Horovod: rank 0 alone creates the run folder and writes into it.
    run = runs.start("sunspots", cfg, args)

    series = datasets.sunspots()
    data = bwkeras.timeseries.supervised_split(series, cfg.data.lags, scale="standard",
                                               validation=cfg.data.validation, test=cfg.data.test)
    to_units = data.scaler.inverse_transform
    truth = to_units(data.y_test)[:, 0]
    years = np.asarray(data.index_test)

    # Baselines: tomorrow as today, and AR(p) solved exactly on the training years.
    predictions = bwkeras.timeseries.one_step_baselines(series, data)

    # Horovod: each rank trains on its own shard of the training windows (with
    # train.elastic on all of them: fit deals them out over the ranks there are; with
    # model parallelism one shard per model group, seen by all of its ranks).
    x_train, y_train = training.shard(cfg.train, (data.x_train, data.y_train))
    for cell in cfg.model.cells:
        training.set_seed(cfg.train.seed)
        model = bwkeras.models.RecurrentForecaster(cell=cell, units=cfg.model.units,
                                                   model_parallel=k)
        # Horovod: scale the learning rate with the number of replicas (the global batch grows).
        lr = dist.scale_learning_rate(cfg.train.learning_rate, cfg.train.lr_rule)
        opt = cfg.train.make_optimizer(lr)
        # Horovod: average gradients over all replicas (the data group) before every update.
        model.compile(optimizer=dist.DistributedOptimizer(opt), loss="mse")
        # Horovod: broadcast rank 0's initial state, average metrics, warm up the LR; then
        # checkpoints and history (rank 0 only) see the averaged metrics; progress on rank 0.
        # A sharded model is checkpointed by every rank: gathered whole, written by rank 0.
        training.fit(model, run, x_train, y_train, cfg.train, tag=cell,
                     validation_data=(data.x_val, data.y_val))
        # Horovod: rank 0 writes the model file; a sharded one is first gathered from every
        # rank (a collective: every rank calls this).
        run.save_model(model, f"model-{cell}.keras")
        predictions[cell] = to_units(np.asarray(model(data.x_test, training=False)))[:, 0]
    if k > 1:
        # Horovod: no rank leaves while another model group still communicates.
        dist.barrier()

    scores = bwkeras.timeseries.one_step_scores(predictions, truth)
    table = [{"model": name, "test RMSE": row.rmse, "ratio to persistence": row.ratio}
             for name, row in scores.iterrows()]

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        run.write_metrics({"test_years": [int(years[0]), int(years[-1])],
                           "n_train": len(data.x_train), "n_val": len(data.x_val),
                           "n_test": len(data.x_test), "ranks": dist.size(),
                           "model_parallel": k, "results": table})
        plots.forecast(series.index, series.to_numpy(),
                       {name: (years, p) for name, p in predictions.items()},
                       t_label="year", y_label="sunspot number (yearly mean)",
                       title="One-step forecasts on the test years", t_split=years[0],
                       path=run.plot_path("forecast"))
        plots.loss_curves({f"{cell} {k}": v for cell in cfg.model.cells
                           for k, v in run.read_history(tag=cell).items() if k.endswith("loss")},
                          loss_label="MSE (standardised units²)", path=run.plot_path("loss"))
        run.write_report("Sunspots: persistence, AR and recurrent networks",
                         tables=[(f"One-step test RMSE, years {years[0]}-{years[-1]} "
                                  f"({dist.size()} rank(s))", table)],
                         plots=[run.plot_path("forecast"), run.plot_path("loss")])
        print(report.markdown_table(table))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
