"""Per-step labels: a recurrent labeler recovers the hidden regime of every time step.

    python recipes/sequence_labeling.py
    horovodrun -np 2 python recipes/sequence_labeling.py --set model.cell=gru

Sequences of different lengths come from a regime-switching process (the observation's
mean depends on a hidden Markov regime); they are zero-padded into one batch and the
SequenceLabeler masks the padding, so padded steps count neither in the loss nor in the
accuracy. Horovod shards the training sequences over the ranks.
"""
import dataclasses

import numpy as np

import bwkeras
from bwkeras import config, plots, report, runs, training
from bwkeras import distributed as dist
from recipes import args as recipe_args


@dataclasses.dataclass
class Data(config.Config):
    n_train: int = 400
    n_test: int = 100
    n_regimes: int = 2
    min_length: int = 20
    max_length: int = 60
    noise: float = 0.5
    seed: int = 0

    def validate(self):
        config.at_least("data.n_train", self.n_train, 1, 10 ** 6)
        config.at_least("data.n_test", self.n_test, 1, 10 ** 6)
        config.at_least("data.n_regimes", self.n_regimes, 2)
        config.at_least("data.min_length", self.min_length, 1)
        config.at_least("data.max_length", self.max_length, self.min_length, 10 ** 5)
        config.finite("data.noise", self.noise, low=0.0)


@dataclasses.dataclass
class Model(config.Config):
    cell: str = "lstm"            # simple | lstm | gru
    units: int = 16
    bidirectional: bool = True

    def validate(self):
        config.one_of("model.cell", self.cell, training.CELLS)
        config.at_least("model.units", self.units, 1)


@dataclasses.dataclass
class LabelingConfig(training.RecipeConfig):
    data: Data = dataclasses.field(default_factory=Data)
    model: Model = dataclasses.field(default_factory=Model)
    train: training.TrainConfig = dataclasses.field(default_factory=lambda: training.TrainConfig(
        epochs=15, batch_size=16, learning_rate=0.01, optimizer="adam"))


CONFIG = LabelingConfig


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    # Horovod: initialise (a no-op in a plain process) and pin one GPU per local rank.
    dist.init()
    # Horovod: rank 0 alone creates the run folder and writes into it.
    run = runs.start("sequence_labeling", cfg, args)

    d = cfg.data
    seqs, labels = bwkeras.timeseries.regime_switching(
        d.n_train + d.n_test, min_length=d.min_length, max_length=d.max_length,
        n_regimes=d.n_regimes, noise=d.noise, seed=d.seed)
    x, y, lengths = bwkeras.timeseries.pad_sequences(seqs, labels)
    x_test, y_test = x[d.n_train:], y[d.n_train:]
    # Horovod: each rank trains on its own shard of the training sequences (with
    # train.elastic on all of them: fit deals them out over the ranks there are).
    x_train, y_train = training.shard(cfg.train, (x[:d.n_train], y[:d.n_train]))

    training.set_seed(cfg.train.seed)
    model = bwkeras.models.SequenceLabeler(cell=cfg.model.cell, units=cfg.model.units,
                                           n_classes=d.n_regimes,
                                           bidirectional=cfg.model.bidirectional)
    # Horovod: scale the learning rate with the number of ranks (the global batch grows).
    lr = dist.scale_learning_rate(cfg.train.learning_rate, cfg.train.lr_rule)
    opt = cfg.train.make_optimizer(lr)
    # Horovod: average gradients over all ranks before every update.
    model.compile(optimizer=dist.DistributedOptimizer(opt),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Horovod: broadcast rank 0's initial state, average metrics, warm up the LR; then
    # checkpoints and history (rank 0 only) see the averaged metrics; progress on rank 0.
    training.fit(model, run, x_train, y_train, cfg.train, validation_data=(x_test, y_test))
    # Accuracy over real steps only (padding excluded), next to the majority-class baseline.
    mask = np.arange(x.shape[1])[None, :] < lengths[d.n_train:, None]
    pred = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    accuracy = float(np.mean(pred[mask] == y_test[mask]))
    majority = float(np.max(np.bincount(y_test[mask])) / mask.sum())
    table = [{"model": "majority class", "test step accuracy": majority},
             {"model": f"{'bidirectional ' if cfg.model.bidirectional else ''}{cfg.model.cell}",
              "test step accuracy": accuracy}]

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        run.save_model(model)
        run.write_metrics({"n_train": d.n_train, "n_test": d.n_test, "ranks": dist.size(),
                           "results": table})
        plots.loss_curves(run.read_history(), loss_label="cross-entropy per step (nats)",
                          path=run.plot_path("loss"))
        n = int(lengths[d.n_train])
        probs = model.predict(x_test[:1], verbose=0)[0, :n, -1]
        plots.forecast(np.arange(n), x_test[0, :n, 0],
                       {"true regime": y_test[0, :n].astype(float),
                        f"P(regime {d.n_regimes - 1})": probs},
                       t_label="time step", y_label="observation / regime probability",
                       title="First test sequence: observations, true regime, predicted probability",
                       path=run.plot_path("labels"))
        run.write_report("Sequence labeling with a recurrent network",
                         tables=[("Test sequences", table)],
                         plots=[run.plot_path("loss"), run.plot_path("labels")])
        print(report.markdown_table(table))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
