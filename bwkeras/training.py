"""The training sequence every recipe shares, in one place.

    training.set_seed(cfg.train.seed)
    model = MLP(...)
    model.compile(optimizer=dist.DistributedOptimizer(opt), loss=...)
    history = training.fit(model, run, x, y, cfg.train, validation_data=(xv, yv))

`fit` builds the model on the first sample, restores a resumed run's last checkpoint
(returning to the epoch after it), and calls ``model.fit`` with the callbacks in the one
order that works (`callbacks`). The sections every recipe's config holds live here
too: `TrainConfig` (how to train) and `RunConfig` (what the run folder keeps).

Keras is imported on first use, not at import: a recipe's config resolves without
starting TensorFlow.
"""
import dataclasses
import os
import typing

from . import checkpoints, config

__all__ = ["BaseTrainConfig", "TrainConfig", "RunConfig", "RecipeConfig", "run_settings",
           "shard", "refuse_elastic", "check_model_parallel", "set_seed", "prepare", "callbacks",
           "fit", "first_reached", "epoch_order", "ELASTIC_COMMIT_STEPS", "OPTIMIZERS",
           "ACTIVATIONS", "CELLS"]

# The names a config may use, known without importing Keras so that a config is checked
# in full before TensorFlow starts (tests/test_hardening_cli.py checks them against
# keras.optimizers.get, bwkeras.activations.NAMES and bwkeras.models.CELLS).
def _optimizer_names():
    """The optimizer names keras.optimizers.get knows on the installed Keras: Keras 2.15
    lacks adamw, lion and adafactor by name. The version is read from the package's
    metadata, which imports nothing."""
    from importlib import metadata

    common = ("sgd", "adam", "adamax", "adagrad", "adadelta", "rmsprop", "nadam", "ftrl")
    try:
        major = int(metadata.version("keras").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        major = 3
    return common + (("adamw", "lion", "adafactor") if major >= 3 else ())


OPTIMIZERS = _optimizer_names()
ACTIVATIONS = ("logistic", "relu", "arctan", "softmax")
CELLS = ("simple", "lstm", "gru")


@dataclasses.dataclass
class BaseTrainConfig(config.Config):
    """The training section without the batch size and its learning-rate rule, for
    studies that vary those themselves."""

    epochs: int = 10
    learning_rate: float = 0.01     # single-process rate
    warmup_epochs: float = 0.0
    optimizer: str = "adam"         # one of OPTIMIZERS (names keras.optimizers.get knows)
    shuffle: bool = True
    seed: int = 0
    # Agree on a stop request every this many steps, and on one checkpoint the state in
    # the middle of the epoch (0: at epoch ends only). Above 0, `fit` also takes over the
    # shuffle: epoch e's order is a function of (seed, e) alone, so a resumed run repeats
    # the data order of an uninterrupted one. 0 by default so existing runs keep Keras'
    # own shuffle and their numbers; 20 keeps the check (one scalar allreduce, about one
    # Horovod cycle) near 1% of a 5 ms step and a stop within 20 steps of the warning.
    commit_steps: int = 0
    # Elastic data parallelism (horovodrun --min-np/--max-np --host-discovery-script, or
    # `bwkeras run --elastic`): the state is committed every commit_steps steps (20 when
    # 0) and at epoch ends, and after a change of world training continues from the last
    # commit with the ranks there are (`_fit_elastic`).
    elastic: bool = False

    def make_optimizer(self, learning_rate=None):
        """A fresh Keras optimizer named by `optimizer` with `learning_rate` (default: the
        config's). Built from the name, so Keras 2 gives its current (not legacy) class."""
        return make_optimizer(self.optimizer,
                              self.learning_rate if learning_rate is None else learning_rate)

    def validate(self):
        if self.epochs < 1:
            raise ValueError(f"train.epochs must be >= 1, got {config.short(self.epochs)}")
        config.finite("train.learning_rate", self.learning_rate, low=0.0, low_open=True)
        config.finite("train.warmup_epochs", self.warmup_epochs, low=0.0)
        if self.commit_steps < 0:
            raise ValueError(f"train.commit_steps must be >= 0 (0: stop at epoch ends only), "
                             f"got {config.short(self.commit_steps)}")
        if self.optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"train.optimizer {config.short(self.optimizer)} is not a Keras "
                             f"optimizer name; expected one of {', '.join(OPTIMIZERS)}")


@dataclasses.dataclass
class TrainConfig(BaseTrainConfig):
    """The training section most recipes share: learning_rate is the single-process rate,
    scaled by `lr_rule` over the ranks."""

    batch_size: int = 32            # per rank; the global batch is batch_size x ranks
    lr_rule: typing.Literal["linear", "sqrt", "none"] = "linear"

    def validate(self):
        super().validate()
        if self.batch_size < 1:
            raise ValueError(f"train.batch_size must be >= 1, got {config.short(self.batch_size)}")


@dataclasses.dataclass
class RunConfig(config.Config):
    """What a run keeps besides its results."""

    checkpoint_keep: int = 2        # newest checkpoints kept per model in checkpoints/
    tensorboard: bool = True        # TensorBoard logs in tensorboard/ (chief only)

    def validate(self):
        if self.checkpoint_keep < 1:
            raise ValueError(f"run.checkpoint_keep must be >= 1, got "
                             f"{config.short(self.checkpoint_keep)}")


@dataclasses.dataclass
class RecipeConfig(config.Config):
    """Base of every recipe's config: the `run` section, typed, for every recipe alike."""

    run: RunConfig = dataclasses.field(default_factory=RunConfig)


def shard(train, data):
    """This rank's shard of the training `data` (`bwkeras.distributed.shard`), or all of
    it with ``train.elastic``: elastic `fit` deals each epoch's samples out over the ranks
    there are, again after every change of world."""
    from . import distributed as dist

    return data if getattr(train, "elastic", False) else dist.shard(data)


def refuse_elastic(train, recipe):
    """For recipes whose training does not go through `fit`: train.elastic would be
    ignored there, so it is refused when the config is checked."""
    if getattr(train, "elastic", False):
        raise ValueError(f"train.elastic: the {recipe} recipe trains without "
                         "bwkeras.training.fit and cannot train elastically; the mlp, "
                         "sequence_labeling, sunspots and large_batch recipes can")


def check_model_parallel(train, k, sharded):
    """For a recipe's config.validate: model.model_parallel = `k` with the widths that k
    must divide (`sharded`, {key: units}, e.g. {"model.units": 32}). ValueError naming
    the key and k when one does not divide, or with train.elastic (a model group's ranks
    cannot come and go). Whether k divides the number of ranks is known only at launch:
    the recipe's command line checks it then (recipes/args.py)."""
    if k == 1:
        return
    for key, units in sharded.items():
        if units % k:
            raise ValueError(f"{key}={units} must be divisible by model.model_parallel={k}: "
                             f"each of the {k} ranks of a model group holds {units}/{k} units; "
                             f"use a multiple of {k}, e.g. {-(-units // k) * k}")
    if getattr(train, "elastic", False):
        raise ValueError(f"train.elastic cannot go with model.model_parallel={k}: the ranks "
                         "of a model group hold one model between them and cannot come and go")


def run_settings(cfg):
    """The RunConfig of config `cfg` (defaults when it is not a RecipeConfig)."""
    return cfg.run if isinstance(cfg, RecipeConfig) else RunConfig()


def make_optimizer(name, learning_rate):
    """A fresh Keras optimizer called `name` (sgd, adam, rmsprop...) at `learning_rate`."""
    import keras

    try:
        base = keras.optimizers.get(name)
    except ValueError:
        raise ValueError(f"train.optimizer {name!r} is not a Keras optimizer name "
                         "(e.g. sgd, adam, rmsprop)") from None
    settings = base.get_config()
    settings["learning_rate"] = float(learning_rate)
    return type(base).from_config(settings)


def set_seed(seed):
    """Seed Python, numpy and TensorFlow, so a model's initial weights repeat."""
    import keras

    keras.utils.set_random_seed(seed)


def prepare(model, run, sample=None, tag=None, epochs=None, lr_rule=None):
    """Make the compiled `model` ready to train into `run`; returns the initial epoch.

    Calls the model on `sample` (a batch of inputs) so its weights exist, creates the
    optimizer's slots, and for a resumed run loads the newest intact checkpoint of model
    `tag` on the chief (the distributed callbacks broadcast it when training begins).
    A checkpoint written by another number of ranks (a relaunch on fewer nodes) has its
    learning rate re-scaled by `lr_rule` from that world to this one.
    Every rank raises if the chief cannot load it, and when `epochs` (the configured
    number) is smaller than the restored epoch: a run is never reported finished on the
    strength of a checkpoint it cannot have written.

    A sharded model (``model_parallel`` > 1) is restored on every rank instead: the chief
    finds the checkpoint, and each rank reads its shard of the whole-model file
    (`ShardedModel.load_weights`), so the run folder must be on a file system every rank
    sees. Its checkpoints hold weights only: the optimizer starts afresh, at the rate this
    run compiled it with.
    """
    from . import distributed as dist
    from ._keras import build_optimizer

    if sample is not None:
        model(sample)
    run.initial_epoch = 0
    run.initial_step = 0
    if not run.resumed:
        return 0
    # Every rank creates its optimizer slots now, so that all ranks hold the same
    # variables when the chief's restored state is broadcast at the start of training.
    build_optimizer(model)

    sharded = checkpoints.is_sharded(model)

    def load_on_chief():
        if not run.is_chief:
            return None
        part = checkpoints.partial(run.path, tag)
        if part is not None:  # stopped inside an epoch, after every epoch checkpoint
            if not sharded:
                checkpoints.load(model, part[2])
                _rescale_for_world(model, part[2], lr_rule)
            return part[0], part[1], part[2]
        found = checkpoints.latest(run.path, tag)
        if found is None and not run.resume_optional:
            where = os.path.relpath(os.path.join(run.checkpoint_dir(tag), checkpoints.LATEST),
                                    run.path)
            raise FileNotFoundError(f"cannot resume {run.path}: it has no {where} "
                                    "(no epoch finished before it stopped)")
        if found is not None and not sharded:
            checkpoints.load(model, found[1])
            _rescale_for_world(model, found[1], lr_rule)
        return (found[0] if found else 0), 0, (found[1] if found else None)

    position = dist.agreed(load_on_chief, name=f"bwkeras.restore.{tag}")
    epoch, step, path = dist.broadcast_object(position, name=f"bwkeras.restore.epoch.{tag}")
    epoch, step = int(epoch), int(step)
    if sharded and path is not None:
        # every rank reads its shard of the whole-model file (a collective: every rank
        # raises CheckpointError if any cannot)
        checkpoints.load(model, path)
    # every rank holds the same epoch now, so every rank raises here or none does
    if epochs is not None and epoch > epochs:
        raise checkpoints.CheckpointError(
            f"cannot resume {run.path}: its checkpoint is from epoch {epoch}, past the "
            f"{epochs} epochs configured (train.epochs); set train.epochs to at least {epoch}")
    run.initial_epoch = epoch
    run.initial_step = step
    return run.initial_epoch


def _rescale_for_world(model, path, rule):
    """The learning rate checkpoint `path` was trained at x rule(this world) / rule(the
    world that saved it): a run relaunched on fewer ranks trains at the rate `lr_rule`
    gives them, and keeps any change a schedule callback made to it. The rate comes from
    the checkpoint's index where it recorded one (Keras 2 does not restore it from the
    file; Keras 3 does, and the two agree), else from the restored optimizer."""
    from . import distributed as dist
    from .distributed.lr import scale_learning_rate

    size = dist.size()
    saved_ranks = checkpoints.saved_ranks(path)
    recorded = checkpoints.saved_learning_rate(path)
    if recorded is not None and checkpoints.learning_rate(model) is not None:
        model.optimizer.learning_rate.assign(recorded)
    lr = checkpoints.learning_rate(model)
    if rule is None or saved_ranks is None or saved_ranks == size or lr is None:
        return
    new = lr * scale_learning_rate(1.0, rule, size) / scale_learning_rate(1.0, rule, saved_ranks)
    model.optimizer.learning_rate.assign(new)
    print(f"bwkeras: the checkpoint was trained on {saved_ranks} ranks, this run has {size}: "
          f"learning rate {lr:g} -> {new:g} (train.lr_rule {rule})", flush=True)


def callbacks(run, warmup_epochs=0.0, tag=None, extra=(), target_lr=None, commit_steps=0):
    """The callbacks for training a model into `run`, in the order they must run:

    1. broadcast of rank 0's initial state and averaging of the epoch metrics over ranks
       (everything after sees the averages), then the learning-rate warmup if any;
    2. `extra`, the caller's own callbacks;
    3. the run's record on the chief: history.csv, the checkpoint, TensorBoard;
    4. the replica check (replicas.json: every rank ended with the same weights);
    5. last, the stop on a scheduler's signal, so the epoch's checkpoint is written before
       training ends with the exit status batch scripts requeue on.

    `tag` keeps several models of one run apart: history-TAG.csv, checkpoints/TAG/.
    `target_lr`: the rate the warmup ends at (default: the optimizer's when training begins).
    `commit_steps`: the stop is agreed every this many steps too (0: at epoch ends only).
    """
    import keras

    from . import distributed as dist
    from .callbacks import Checkpoint, HistoryCSV
    from .exit_codes import EXIT_PREEMPTED

    out = dist.callbacks(warmup_epochs, target_lr=target_lr)
    out += list(extra)
    out.append(HistoryCSV(run.history_path(tag), enabled=run.is_chief))
    out.append(Checkpoint(run.checkpoint_dir(tag), keep=run.settings.checkpoint_keep,
                          enabled=run.is_chief, ranks=dist.size()))
    if run.settings.tensorboard and run.is_chief:
        out.append(keras.callbacks.TensorBoard(
            log_dir=run.file("tensorboard", *([tag] if tag else [])),
            write_graph=False, profile_batch=0))
    name = f"replicas-{tag}.json" if tag else "replicas.json"
    out.append(dist.ReplicaDigest(on_result=lambda r: run.write_json(name, r)))
    out.append(dist.StopOnSignal(exit_code=EXIT_PREEMPTED, every_steps=commit_steps or None))
    return out


def fit(model, run, x, y=None, train=None, *, tag=None, extra_callbacks=(), batch_size=None,
        warmup_epochs=None, verbose=2, **fit_kwargs):
    """Train the compiled `model` into `run`: `prepare` on ``x[:1]``, then
    ``model.fit`` from the initial epoch with `callbacks`. Returns the History.

    train: the TrainConfig (epochs, per-rank batch size, shuffle, warmup, commit_steps);
    `batch_size` and `warmup_epochs` override it. verbose: the chief's verbosity; other
    ranks are silent. Other keyword arguments go to ``model.fit`` (validation_data, ...).

    With ``train.commit_steps`` = k > 0 a stop request ends training within k steps: the
    ranks agree, the chief writes the mid-epoch checkpoint (`checkpoints.save_partial`),
    and the program exits with EXIT_PREEMPTED; a resumed run trains the rest of that epoch
    in the same order (`epoch_order`) and ends with the weights of an uninterrupted one.
    """
    from . import distributed as dist

    train = train if train is not None else TrainConfig()
    warmup = train.warmup_epochs if warmup_epochs is None else warmup_epochs
    # The rate the optimizer was made with, read before a resumed run's checkpoint replaces
    # it by the part-warmed rate it was saved with: the warmup must still end at this one.
    target_lr = checkpoints.learning_rate(model) if warmup else None
    initial_epoch = prepare(model, run, x[:1], tag=tag, epochs=train.epochs,
                            lr_rule=getattr(train, "lr_rule", None))
    batch_size = train.batch_size if batch_size is None else batch_size
    commit_steps = getattr(train, "commit_steps", 0)
    cbs = callbacks(run, warmup, tag=tag, extra=extra_callbacks, target_lr=target_lr,
                    commit_steps=commit_steps)
    if getattr(train, "elastic", False):
        return _fit_elastic(model, run, x, y, train, tag, extra_callbacks, batch_size, warmup,
                            initial_epoch, dist.fit_verbosity(verbose), fit_kwargs)
    # A run stopped inside an epoch trains the rest of it in the same order even when it
    # is resumed without commit_steps (it then stops at epoch ends only).
    if not commit_steps and not getattr(run, "initial_step", 0):
        return model.fit(
            x, y, epochs=train.epochs, initial_epoch=initial_epoch, batch_size=batch_size,
            shuffle=train.shuffle, callbacks=cbs, verbose=dist.fit_verbosity(verbose),
            **fit_kwargs)
    return _fit_in_steps(model, run, x, y, train, tag, cbs, batch_size, initial_epoch,
                         dist.fit_verbosity(verbose), fit_kwargs)


def epoch_order(n, seed, epoch):
    """The order in which epoch `epoch` visits `n` samples: a permutation that depends on
    (seed, epoch) alone, never on what the process drew before, so a run resumed in the
    middle of an epoch sees the same order as an uninterrupted one
    (`bwkeras.distributed.sharding.epoch_order`)."""
    from .distributed.sharding import epoch_order as order

    return order(n, seed, epoch)


def _take(data, index):
    """`data` (an array, a pandas object, or a tuple / list / dict of them) at `index`."""
    if data is None:
        return None
    if isinstance(data, dict):
        return {k: _take(v, index) for k, v in data.items()}
    if isinstance(data, (tuple, list)):
        return type(data)(_take(v, index) for v in data)
    return data.iloc[index] if hasattr(data, "iloc") else data[index]


def _length(data):
    if isinstance(data, dict):
        data = next(iter(data.values()))
    elif isinstance(data, (tuple, list)):
        data = data[0]
    return len(data)


def _require_arrays(x, what):
    import numpy as np

    if not isinstance(x, (np.ndarray, tuple, list, dict)) and not hasattr(x, "iloc"):
        raise TypeError(f"{what} needs the training data as arrays (numpy, pandas, or a "
                        f"tuple / list / dict of them), got {type(x).__name__}")


def _fit_in_steps(model, run, x, y, train, tag, cbs, batch_size, initial_epoch, verbose,
                  fit_kwargs):
    """One ``model.fit`` per epoch over that epoch's `epoch_order` (the rest of it, for
    the epoch a resumed run stopped in), with the stop agreed every commit_steps steps."""
    import math

    import numpy as np

    from . import distributed as dist
    from .distributed.keras_callbacks import LearningRateWarmup
    from .exit_codes import EXIT_PREEMPTED

    _require_arrays(x, "train.commit_steps > 0")
    n = _length(x)
    steps = math.ceil(n / batch_size)
    stop = cbs[-1]
    stop.exit_code = None  # exits below, once the mid-epoch checkpoint is on disk
    stop.hold = True
    warmups = [c for c in cbs if isinstance(c, LearningRateWarmup)]
    for cb in warmups:
        cb.steps_per_epoch = steps
    weights = fit_kwargs.pop("sample_weight", None)
    history = None
    merged, epochs_seen = {}, []
    stop.install()
    try:
        for epoch in range(initial_epoch, train.epochs):
            skip = run.initial_step if epoch == initial_epoch else 0
            if skip >= steps:
                raise ValueError(f"cannot resume {run.path} at step {skip} of epoch {epoch + 1}: "
                                 f"an epoch of this data has {steps} steps of {batch_size}")
            order = epoch_order(n, train.seed, epoch) if train.shuffle else np.arange(n)
            index = order[skip * batch_size:]
            stop.step_offset = skip
            for cb in warmups:
                cb.batch_offset = skip
            history = model.fit(
                _take(x, index), _take(y, index), sample_weight=_take(weights, index),
                epochs=epoch + 1, initial_epoch=epoch, batch_size=batch_size, shuffle=False,
                callbacks=cbs, verbose=verbose, **fit_kwargs)
            epochs_seen += list(history.epoch)
            for key, values in history.history.items():
                merged.setdefault(key, []).extend(values)
            if stop.preempted:
                break
    finally:
        stop.restore()
    if stop.preempted:
        if stop.stopped_step is not None:
            epoch, step = stop.stopped_epoch, stop.stopped_step

            # a sharded model is gathered whole on every rank first (a collective)
            whole = checkpoints.gathered(model)

            def save_on_chief():
                if run.is_chief and whole is not None:
                    checkpoints.save_partial(whole, run.checkpoint_dir(tag), epoch, step,
                                             ranks=dist.size())

            # every rank waits for the chief's file: a rank that exited first would make
            # the launcher end the job while the chief still writes it
            dist.agreed(save_on_chief, name=f"bwkeras.partial.{tag}")
        raise SystemExit(EXIT_PREEMPTED)
    if history is None:  # nothing left to train
        import keras

        history = keras.callbacks.History()
    history.epoch, history.history = epochs_seen, merged
    return history


ELASTIC_COMMIT_STEPS = 20  # train.commit_steps = 0 with train.elastic: commit this often


class _ElasticRecord:
    """Keras callbacks of an elastic fit, around the run's own: `ranks` into each epoch's
    logs (history.csv's column) before the run records them, and after them the epoch's
    logs kept in the state (a rank that joins later, or the chief after the old one was
    lost, returns the whole history)."""

    def __init__(self, state):
        import keras

        from .distributed.elastic import _RanksInLogs

        class Keep(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                state.epochs.append(epoch)
                for key, value in (logs or {}).items():
                    state.history.setdefault(key, []).append(float(value))

        self.ranks, self.keep = _RanksInLogs(), Keep()


def _fit_elastic(model, run, x, y, train, tag, extra, batch_size, warmup, initial_epoch,
                 verbose, fit_kwargs):
    """Elastic training into `run` (``train.elastic``), on Horovod's elastic machinery.

    The state (weights, optimizer, epoch, samples of the epoch trained, the history so
    far, the worlds seen) is committed every ``train.commit_steps`` steps and at epoch
    ends. After a change of world, `bwkeras.distributed.elastic.run` rolls back to the
    last commit (or keeps it, when the hosts changed at a commit) and this starts again:
    rank 0 (maybe another process now) records the run, the learning rate is the
    single-process rate scaled by ``train.lr_rule`` for the new number of ranks (a warmup
    continues where it was, to that rate), and the epoch's samples the world has not yet
    trained are dealt out over the new ranks (`sharding.unseen_share`), so every sample
    is trained once per epoch. world.json and the report list each change of world.
    """
    import math
    import time

    import keras
    import numpy as np

    from . import distributed as dist
    from .distributed import elastic
    from .distributed.keras_callbacks import LearningRateWarmup
    from .distributed.lr import scale_learning_rate
    from .distributed.sharding import unseen_share
    from .distributed.watchdog import StallWatchdog
    from .exit_codes import EXIT_PREEMPTED

    _require_arrays(x, "train.elastic")
    if getattr(run, "initial_step", 0):
        raise ValueError(f"cannot resume {run.path} elastically: it stopped inside epoch "
                         f"{run.initial_epoch + 1} without train.elastic; resume it without "
                         "train.elastic to finish that epoch first")
    n = _length(x)
    rule = getattr(train, "lr_rule", "none")
    compiled = checkpoints.learning_rate(model)
    # the single-process rate behind the compiled one, to scale for each new world
    base_lr = compiled / scale_learning_rate(1.0, rule, dist.size()) if compiled else None
    state = elastic.KerasState(model, epoch=initial_epoch, history={}, epochs=[], worlds=[])
    commit = elastic.CommitState(state, train.commit_steps or ELASTIC_COMMIT_STEPS)
    record = _ElasticRecord(state)
    weights = fit_kwargs.pop("sample_weight", None)
    stop = dist.StopOnSignal(exit_code=None)
    stop.hold = True

    @elastic.run
    def train_elastic(state):
        size, rank = dist.size(), dist.rank()
        run.is_chief = dist.is_chief()
        if not state.worlds or state.worlds[-1]["ranks"] != size:
            state.worlds.append({
                "epoch": state.epoch + 1, "samples_done": state.seen, "ranks": size,
                "from": state.worlds[-1]["ranks"] if state.worlds else None,
                "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
            run.write_json("world.json", state.worlds)
        lr = base_lr * scale_learning_rate(1.0, rule, size) if base_lr else None
        if lr is not None and not warmup:
            model.optimizer.learning_rate.assign(lr)
        cbs = callbacks(run, warmup, tag=tag, extra=[*extra, record.ranks], target_lr=lr)
        cbs[-1:] = [record.keep, commit, stop]  # the run's own stop, at epoch ends
        # No stall watchdog: a fit that a lost peer ends never reaches on_train_end, and
        # its watchdog would then end the job while the world re-forms. A lost peer ends
        # the step at once (Gloo), a frozen one after Gloo's timeout.
        cbs = [c for c in cbs if not isinstance(c, StallWatchdog)]
        warmups = [c for c in cbs if isinstance(c, LearningRateWarmup)]
        for epoch in range(state.epoch, train.epochs):
            order = epoch_order(n, train.seed, epoch) if train.shuffle else np.arange(n)
            mine = unseen_share(order, state.seen, rank, size)
            if len(mine) == 0:  # fewer unseen samples than ranks: the epoch is over
                commit.on_epoch_end(epoch)
                continue
            for cb in warmups:  # the ramp goes on from the epoch's share already trained
                cb.steps_per_epoch = math.ceil(n / (size * batch_size))
                cb.batch_offset = state.seen // (size * batch_size)
            commit.step_samples, commit.limit = size * batch_size, state.seen + len(mine) * size
            model.fit(_take(x, mine), _take(y, mine), sample_weight=_take(weights, mine),
                      epochs=epoch + 1, initial_epoch=epoch, batch_size=batch_size,
                      shuffle=False, callbacks=cbs, verbose=verbose, **fit_kwargs)
            if stop.preempted:
                return

    stop.install()
    try:
        train_elastic(state)
    finally:
        stop.restore()
    if stop.preempted:
        raise SystemExit(EXIT_PREEMPTED)
    history = keras.callbacks.History()
    history.epoch, history.history = list(state.epochs), {k: list(v) for k, v in state.history.items()}
    return history


def first_reached(values, seconds, target):
    """(epoch, seconds) at the end of the first epoch whose value is >= `target`, both
    counted from the start of training; (None, None) when no epoch reached it."""
    for epoch, (value, sec) in enumerate(zip(values, seconds), start=1):
        if value >= target:
            return epoch, float(sec)
    return None, None
