"""The large-batch study: an MLP on the 8x8 digits at several global batch sizes and learning-rate rules.

    python recipes/large_batch.py
    horovodrun -np 2 python recipes/large_batch.py --set train.warmup_epochs=2

"SGD often outperforms GD, want small batches": a small batch takes many noisy steps per
epoch, a large one few accurate steps. Data-parallel training grows the global batch with
every rank added. Keeping the learning rate as it is, a larger batch reaches a given
accuracy later and may generalize worse (Keskar et al. 2016, arXiv:1609.04836: large
batches tend to sharp minima). Scaling the rate with the batch, linearly with a gradual
warmup (Goyal et al. 2017, arXiv:1706.02677) or by the square root, recovers much of it up
to a limit; past it, training needs more care (Akiba et al. 2017, arXiv:1711.04325).

For every global batch in study.batch_sizes and every rule in study.lr_rules the MLP
trains from the same initial weights, with train.learning_rate scaled from
study.base_batch to the batch by the rule: x k (linear), x sqrt(k) (sqrt) or x 1 (none),
k = batch / base_batch. The table gives the final training and test accuracy, the
generalization gap (train - test, in accuracy and in cross-entropy), and the epoch and
training time at which test accuracy first reached study.target_accuracy. 20% of the
images are held out for testing; Horovod shards the training images over the ranks and
splits each global batch evenly between them.
"""
import dataclasses
import time
import typing

import numpy as np

import bwkeras
from bwkeras import config, datasets, plots, report, runs, training
from bwkeras import distributed as dist
from recipes import args as recipe_args

EVAL_BATCH = 512   # batch of the test-set evaluations; it does not change any result
NOT_REACHED = "not reached"


@dataclasses.dataclass
class Data(config.Config):
    test: float = 0.2             # fraction of the images held out
    split_seed: int = 0

    def validate(self):
        if not 0.0 < self.test < 1.0:
            raise ValueError(f"data.test must be a fraction between 0 and 1 (exclusive), "
                             f"got {self.test!r}")


@dataclasses.dataclass
class Model(config.Config):
    hidden_units: typing.List[int] = dataclasses.field(default_factory=lambda: [64])
    activation: str = "relu"      # logistic | relu | arctan | softmax

    def validate(self):
        for units in self.hidden_units:
            config.at_least("model.hidden_units: each width", units, 1)
        config.one_of("model.activation", self.activation, training.ACTIVATIONS)


@dataclasses.dataclass
class Study(config.Config):
    # global batches (all ranks together); 1438 is every training image: full-batch GD
    batch_sizes: typing.List[int] = dataclasses.field(default_factory=lambda: [32, 128, 512, 1438])
    lr_rules: typing.List[str] = dataclasses.field(default_factory=lambda: ["none", "linear", "sqrt"])
    base_batch: int = 32            # the global batch train.learning_rate is meant for
    target_accuracy: float = 0.9    # the test accuracy whose first epoch and time are recorded

    def validate(self):
        if not self.batch_sizes:
            raise ValueError("study.batch_sizes must list at least one global batch size, got []")
        for b in self.batch_sizes:
            if b < 1:
                raise ValueError(f"study.batch_sizes must hold positive integers, got {b!r} in "
                                 f"{self.batch_sizes!r}")
        if len(set(self.batch_sizes)) != len(self.batch_sizes):
            raise ValueError(f"study.batch_sizes lists a batch size twice: {self.batch_sizes!r}")
        if not self.lr_rules:
            raise ValueError("study.lr_rules must list at least one rule of "
                             f"{', '.join(dist.LR_RULES)}, got []")
        for rule in self.lr_rules:
            if rule not in dist.LR_RULES:
                raise ValueError(f"study.lr_rules: {rule!r} is not a learning-rate rule; expected "
                                 f"one of {', '.join(dist.LR_RULES)}")
        if len(set(self.lr_rules)) != len(self.lr_rules):
            raise ValueError(f"study.lr_rules lists a rule twice: {self.lr_rules!r}")
        if self.base_batch < 1:
            raise ValueError(f"study.base_batch must be a positive integer, got {self.base_batch!r}")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ValueError(f"study.target_accuracy must be in (0, 1], got {self.target_accuracy!r}")


@dataclasses.dataclass
class LargeBatchConfig(training.RecipeConfig):
    data: Data = dataclasses.field(default_factory=Data)
    model: Model = dataclasses.field(default_factory=Model)
    study: Study = dataclasses.field(default_factory=Study)
    # The usual train section less batch_size and lr_rule, which the study varies;
    # learning_rate is the rate at study.base_batch, and each rule scales it from there.
    train: training.BaseTrainConfig = dataclasses.field(
        default_factory=lambda: training.BaseTrainConfig(epochs=40, learning_rate=0.1,
                                                         optimizer="sgd"))


CONFIG = LargeBatchConfig


def study_learning_rate(base_lr, rule, global_batch, base_batch):
    """`base_lr` (right for `base_batch`) scaled to `global_batch` by `rule`: x k (linear),
    x sqrt(k) (sqrt) or unchanged (none), k = global_batch / base_batch."""
    return dist.scale_learning_rate(base_lr, rule, size=global_batch / base_batch)


def check_batches(batch_sizes, ranks, n_train):
    """The per-rank batch of every global batch; ValueError for the first that cannot run."""
    out = []
    for global_batch in batch_sizes:
        if global_batch > n_train:
            raise ValueError(f"study.batch_sizes: global batch {global_batch} is larger than the "
                             f"{n_train} training images (the full batch is {n_train})")
        out.append(dist.per_rank_batch(global_batch, ranks))
    return out


def warmup(warmup_epochs, lr, base_lr):
    """Goyal et al.'s gradual warmup from `base_lr` up to `lr` over `warmup_epochs`; none
    when the rule did not raise the rate."""
    if warmup_epochs <= 0 or lr <= base_lr:
        return []
    # target_lr: a model resumed mid-warmup restores a part-warmed rate; the ramp ends at lr.
    return [dist.LearningRateWarmup(warmup_epochs, factor=lr / base_lr, target_lr=lr)]


def _shown(rows, columns=None):
    """Rows for a markdown table: a target never reached reads "not reached"."""
    return [{k: NOT_REACHED if v is None else v for k, v in row.items()
             if columns is None or k in columns} for row in rows]


def _observations(table, target):
    lines = []
    for rule in dict.fromkeys(row["lr rule"] for row in table):
        rows = [r for r in table if r["lr rule"] == rule]
        hit = [f"{r['global batch']} (epoch {r['epoch to target']})" for r in rows
               if r["epoch to target"] is not None]
        miss = [str(r["global batch"]) for r in rows if r["epoch to target"] is None]
        text = f"- **{rule}**: test accuracy {target:g} "
        if hit:
            text += f"reached at batch {', '.join(hit)}"
            if miss:
                text += f"; not reached at batch {', '.join(miss)}"
        else:
            text += f"not reached at any batch ({', '.join(miss)})"
        best = max(rows, key=lambda r: r["test accuracy"])
        lines.append(text + f". Best test accuracy {best['test accuracy']:.4f} at batch "
                            f"{best['global batch']}.")
    return "\n".join(lines)


ABOUT = """\
Every run starts from the same weights and sees each training image once per epoch, so a
batch of B takes about n/B updates per epoch. With the rate unchanged (**none**) a larger
batch takes fewer steps of the same length: it needs more epochs to reach the target, and
it may generalize worse (Keskar et al. 2016, arXiv:1609.04836). **linear** multiplies the
rate by k = B / base batch, so an epoch travels about as far as at the base batch (Goyal et
al. 2017, arXiv:1706.02677), until the rate is too large to be stable: a gradual warmup
(`train.warmup_epochs`) pushes that limit out. **sqrt** multiplies it by sqrt(k), which keeps
the variance of an update about constant. Akiba et al. 2017 (arXiv:1711.04325) push the
batch to 32k images with further tricks.

The gaps are train - test: accuracy gap > 0 and loss gap < 0 when the model fits its
training images better than unseen ones. Times are training time on rank 0 (the per-epoch
test evaluation and checkpoint writes left out); every run's first epoch includes building
its training step.
"""


def main(argv=None):
    cfg, args = recipe_args.parse(CONFIG(), argv, description=__doc__)
    # Horovod: initialise (a no-op in a plain process) and pin one GPU per local rank.
    dist.init()

    x, y = datasets.digits()
    order = np.random.default_rng(cfg.data.split_seed).permutation(len(y))
    n_test = int(round(cfg.data.test * len(y)))
    test, train = order[:n_test], order[n_test:]
    if n_test < 1 or len(train) < 1:
        raise SystemExit(f"large_batch: data.test={cfg.data.test} leaves {len(train)} training "
                         f"and {n_test} test images; both need at least one")
    try:
        # Horovod: every global batch is split evenly over the ranks (checked before any
        # rank creates a run folder or trains).
        per_rank = check_batches(cfg.study.batch_sizes, dist.size(), len(train))
    except ValueError as exc:
        raise SystemExit(f"large_batch: {exc}") from None
    # Horovod: rank 0 alone creates the run folder and writes into it.
    run = runs.start("large_batch", cfg, args)
    # --resume: the models an interrupted study had not begun have no checkpoint yet.
    run.resume_optional = True
    # Horovod: each rank trains on its own shard of the training images (with
    # train.elastic on all of them: fit deals them out over the ranks there are).
    x_train, y_train = training.shard(cfg.train, (x[train], y[train]))

    base_lr, target = cfg.train.learning_rate, cfg.study.target_accuracy
    table, curves = [], {rule: {} for rule in cfg.study.lr_rules}
    for global_batch, batch in zip(cfg.study.batch_sizes, per_rank):
        for rule in cfg.study.lr_rules:
            tag = f"batch{global_batch}-{rule}"
            training.set_seed(cfg.train.seed)
            model = bwkeras.models.MLP(hidden_units=cfg.model.hidden_units,
                                       activation=cfg.model.activation, output="softmax",
                                       n_outputs=10)
            # Horovod: the rate follows the global batch (all ranks' images per update),
            # whatever the number of ranks.
            lr = study_learning_rate(base_lr, rule, global_batch, cfg.study.base_batch)
            opt = cfg.train.make_optimizer(lr)
            # Horovod: average gradients over all ranks before every update.
            model.compile(optimizer=dist.DistributedOptimizer(opt),
                          loss="sparse_categorical_crossentropy", metrics=["accuracy"])
            # The clock counts on from a resumed model's recorded training time.
            clock = bwkeras.callbacks.TrainingClock(
                previous=run.read_history(tag=tag).get("seconds", []))
            started = time.perf_counter()
            training.fit(
                model, run, x_train, y_train, cfg.train, tag=tag,
                # Horovod: each rank takes its part of the global batch per step.
                batch_size=batch,
                # Horovod: broadcast rank 0's initial state, average metrics, warm the rate
                # up from the base batch's; then the clock, and history and checkpoints
                # (rank 0 only) see the averaged metrics.
                warmup_epochs=0,
                extra_callbacks=warmup(cfg.train.warmup_epochs, lr, base_lr) + [clock],
                validation_data=(x[test], y[test]), validation_batch_size=EVAL_BATCH,
                # Horovod: no progress bars; rank 0 prints one line per run below.
                verbose=0,
            )
            wall = time.perf_counter() - started
            # Horovod: every rank holds the same weights, so each evaluates the whole sets.
            train_loss, train_acc = model.evaluate(x[train], y[train], batch_size=EVAL_BATCH,
                                                   verbose=0)
            test_loss, test_acc = model.evaluate(x[test], y[test], batch_size=EVAL_BATCH,
                                                 verbose=0)
            # Horovod: rank 0 alone saves the model and reads back its history.
            run.save_model(model, f"model-{tag}.keras")
            if not dist.is_chief():
                continue
            history = run.read_history(tag=tag)
            accuracy, seconds = history.get("val_accuracy", []), history.get("seconds", [])
            epoch, at = training.first_reached(accuracy, seconds, target)
            steps = -(-len(y_train) // batch)  # per epoch, the same on every rank
            table.append({
                "global batch": global_batch, "per-rank batch": batch, "lr rule": rule,
                "learning rate": lr, "updates": steps * cfg.train.epochs,
                "train accuracy": float(train_acc), "test accuracy": float(test_acc),
                "accuracy gap": float(train_acc) - float(test_acc),
                "train loss": float(train_loss), "test loss": float(test_loss),
                "loss gap": float(train_loss) - float(test_loss),
                "epoch to target": epoch, "seconds to target": at,
                "train seconds": float(seconds[-1]) if seconds else None,
                "wall seconds": wall,
            })
            curves[rule][f"batch {global_batch}"] = (seconds, accuracy)
            print(f"batch {global_batch} ({batch} per rank), rule {rule}: lr {lr:.4g}, "
                  f"test accuracy {float(test_acc):.4f}, target {target:g} "
                  + (f"at epoch {epoch} ({at:.2f} s)" if epoch else NOT_REACHED)
                  + f", {wall:.1f} s", flush=True)

    # Horovod: rank 0 alone writes results and plots and prints the table.
    if dist.is_chief():
        run.write_csv("results.csv", table)
        run.write_metrics({"n_train": len(train), "n_test": n_test, "ranks": dist.size(),
                           "base_batch": cfg.study.base_batch, "base_learning_rate": base_lr,
                           "target_accuracy": target, "results": table})
        plots.accuracy_curves(curves, target=target,
                              title="Test accuracy per learning-rate rule and global batch",
                              path=run.plot_path("test_accuracy"))
        batches = cfg.study.batch_sizes

        def by_rule(key):
            return {rule: [next(r[key] for r in table
                                if r["global batch"] == b and r["lr rule"] == rule)
                           for b in batches] for rule in cfg.study.lr_rules}

        plots.batch_size_effect(batches, {
            "final test accuracy": by_rule("test accuracy"),
            "generalization gap: train - test accuracy": by_rule("accuracy gap"),
            f"training seconds to test accuracy {target:g}": by_rule("seconds to target"),
        }, title="The large-batch study: outcome per global batch and learning-rate rule",
            path=run.plot_path("batch_size"))
        run.write_report(
            "The large-batch study: MLP on the 8x8 digits",
            tables=[(f"Per global batch and rule ({dist.size()} rank(s), base batch "
                     f"{cfg.study.base_batch} at rate {base_lr:g}, {cfg.train.epochs} epochs, "
                     f"warmup {cfg.train.warmup_epochs:g} epochs)", _shown(table))],
            sections=[("What it shows", _observations(table, target) + "\n\n" + ABOUT),
                      ("Files", "The table as CSV: [results.csv](results.csv).")],
            plots=[run.plot_path("test_accuracy"), run.plot_path("batch_size")])
        print(report.markdown_table(_shown(table, (
            "global batch", "lr rule", "learning rate", "test accuracy", "accuracy gap",
            "loss gap", "epoch to target", "seconds to target", "train seconds"))))
        print(f"\nOutputs in {run.path}")
    return run


if __name__ == "__main__":
    main()
