"""MLP classification of the 8x8 handwritten digits (scikit-learn's bundled data), data-parallel.

    python recipes/mlp.py
    horovodrun -np 2 python recipes/mlp.py --set model.activation=relu
    horovodrun -np 4 python recipes/mlp.py --set model.model_parallel=2

The tutorial's multilayer perceptron: hidden layers Z = sigma(alpha_0 + alpha X), softmax
output over the 10 digits, trained with cross-entropy. 20% of the images are held out
for testing; Horovod shards the training images over the ranks. With model.model_parallel
= k the k ranks of each model group hold one model between them (each 1/k of every hidden
layer) and the images are sharded over the N/k model groups.
"""
import dataclasses
import typing

import numpy as np

import bwkeras
from bwkeras import config, datasets, plots, report, runs, training
from bwkeras import distributed as dist
from recipes import args as recipe_args


@dataclasses.dataclass
class Data(config.Config):
    test: float = 0.2             # fraction of the images held out
    split_seed: int = 0

    def validate(self):
        config.fraction("data.test", self.test)


@dataclasses.dataclass
class Model(config.Config):
    hidden_units: typing.List[int] = dataclasses.field(default_factory=lambda: [64])
    activation: str = "logistic"  # logistic | relu | arctan | softmax
    model_parallel: int = 1       # ranks per model group (tensor parallelism); divides ranks

    def validate(self):
        for units in self.hidden_units:
            config.at_least("model.hidden_units: each width", units, 1)
        config.one_of("model.activation", self.activation, training.ACTIVATIONS)
        config.at_least("model.model_parallel", self.model_parallel, 1)


@dataclasses.dataclass
class MLPConfig(training.RecipeConfig):
    data: Data = dataclasses.field(default_factory=Data)
    model: Model = dataclasses.field(default_factory=Model)
    train: training.TrainConfig = dataclasses.field(default_factory=lambda: training.TrainConfig(
        epochs=30, batch_size=32, learning_rate=0.005, optimizer="adam"))

    def validate(self):
        # k divides the column-parallel layers: hidden layers 1, 3, 5, ... (bwkeras.models.MLP)
        units = self.model.hidden_units
        training.check_model_parallel(self.train, self.model.model_parallel,
                                      {f"model.hidden_units[{i}]": units[i]
                                       for i in range(0, len(units), 2)})


CONFIG = MLPConfig


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
    run = runs.start("mlp", cfg, args)

    x, y = datasets.digits()
    order = np.random.default_rng(cfg.data.split_seed).permutation(len(y))
    n_test = int(round(cfg.data.test * len(y)))
    test, train = order[:n_test], order[n_test:]
    # Horovod: each rank trains on its own shard of the training images (with
    # train.elastic on all of them: fit deals them out over the ranks there are; with
    # model parallelism one shard per model group, seen by all of its ranks).
    x_train, y_train = training.shard(cfg.train, (x[train], y[train]))

    training.set_seed(cfg.train.seed)
    model = bwkeras.models.MLP(hidden_units=cfg.model.hidden_units,
                               activation=cfg.model.activation, output="softmax", n_outputs=10,
                               model_parallel=k)
    # Horovod: scale the learning rate with the number of replicas (the global batch grows).
    lr = dist.scale_learning_rate(cfg.train.learning_rate, cfg.train.lr_rule)
    opt = cfg.train.make_optimizer(lr)
    # Horovod: average gradients over all replicas (the data group) before every update.
    model.compile(optimizer=dist.DistributedOptimizer(opt),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Horovod: broadcast rank 0's initial state, average metrics, warm up the LR; then
    # checkpoints and history (rank 0 only) see the averaged metrics; progress on rank 0.
    # A sharded model is checkpointed by every rank: gathered whole, written by rank 0.
    training.fit(model, run, x_train, y_train, cfg.train, validation_data=(x[test], y[test]))
    loss, accuracy = model.evaluate(x[test], y[test], verbose=0)
    table = [{"model": f"MLP {cfg.model.hidden_units} {cfg.model.activation}",
              "test loss": loss, "test accuracy": accuracy,
              "parameters": model.count_full_params() if k > 1 else model.count_params()}]
    # Horovod: rank 0 writes the model file; a sharded one is first gathered from every
    # rank (a collective: every rank calls this).
    run.save_model(model)
    if k > 1:
        # Horovod: no rank leaves while another model group still communicates.
        dist.barrier()

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        run.write_metrics({"n_train": len(train), "n_test": n_test, "ranks": dist.size(),
                           "model_parallel": k, "results": table})
        plots.loss_curves(run.read_history(), loss_label="cross-entropy (nats)",
                          path=run.plot_path("loss"))
        plots.activations(path=run.plot_path("activations"))
        run.write_report("MLP on the 8x8 digits", tables=[("Test set", table)],
                         plots=[run.plot_path("loss"), run.plot_path("activations")])
        print(report.markdown_table(table))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
