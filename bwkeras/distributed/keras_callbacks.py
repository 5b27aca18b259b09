"""Callbacks that make `model.fit` data-parallel; `callbacks()` returns them in order."""
import math
import weakref

import keras
import numpy as np

from .._keras import build_optimizer
from . import model_parallel, runtime


def _optimizer_variables(optimizer):
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


# A prime, coprime to the modulus 2**31 - 2 by which Keras' TensorFlow backend reduces a
# seed (Knuth's multiplicative-hashing constant).
SEED_STRIDE = 2654435761
_SEED_MODULUS = 2**31 - 2


def seed_states(model):
    """The state variables of the model's ``keras.random.SeedGenerator``s (dropout masks,
    noise layers): on Keras 3 the model's variables that are not weights; none on Keras 2."""
    weights = {id(w) for w in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def decorrelate_seed_generators(model, rank=None, states=None):
    """Give every rank its own random stream after a broadcast made them all equal.

    A SeedGenerator's state is (seed, counter), and each draw uses it and then steps the
    counter; rank r moves the seed by r x SEED_STRIDE, so the ranks' (seed, counter) pairs
    never meet and rank 0 keeps the stream of a single process. The result depends only on
    the broadcast state and the rank: a rerun draws the same masks on every rank.
    `states`: the seed-state variables to change (default: all of the model's).
    """
    r = runtime.rank() if rank is None else rank
    if r == 0:
        return
    for state in seed_states(model) if states is None else states:
        value = np.asarray(state.numpy() if hasattr(state, "numpy") else state)
        seed = int(value[0]) % _SEED_MODULUS + r * SEED_STRIDE
        if value.dtype.itemsize < 8:
            seed %= 2**31 - 1
        state.assign(np.array([seed] + [int(v) for v in value[1:]], dtype=value.dtype))


def _has_weights(model):
    if model.built:
        return True
    try:
        return bool(model.trainable_variables)
    except ValueError:  # Keras 2: an unbuilt model has no weights to list yet
        return False


class BroadcastInitialState(keras.callbacks.Callback):
    """Copy rank 0's model weights and optimizer state to every rank before the first update.

    Under model parallelism each rank's shards come from the rank holding the same
    shards in the first model group, and replicated weights from rank 0.

    Horovod's own callback broadcasts at the end of the first batch, after one update from
    unequal weights; here it happens in `on_train_begin`, so ranks that initialised with
    different seeds train exactly like a single process. The broadcast copies the state of
    the Keras 3 random seed generators too; each rank's is then moved off rank 0's
    (:func:`decorrelate_seed_generators`), so the ranks draw different dropout masks, as
    the samples of one process's global batch would.
    """

    def __init__(self, root_rank=0):
        super().__init__()
        self.root_rank = root_rank
        self._pending = False

    def set_model(self, model):
        super().set_model(model)
        # Horovod's collectives cannot run inside an XLA-compiled train step (and the XLA
        # allreduce op is not built), but Keras 3 turns jit_compile on by itself on GPU
        # machines ("auto"). fit() builds its train function after set_model, so turning
        # it off here still takes effect.
        if runtime.size() > 1 and getattr(model, "jit_compile", False):
            model.jit_compile = False
            model.train_function = None

    def on_train_begin(self, logs=None):
        self._pending = runtime.size() > 1
        if self._pending and _has_weights(self.model):
            self._broadcast()

    def on_train_batch_end(self, batch, logs=None):
        # A model never called before fit (a subclassed model without keras.Input) has no
        # weights until the first step traces it. Then, like Horovod's callback, broadcast
        # after that first step; gradients were averaged, so ranks differ only by their
        # start. Build or call the model before fit for an exactly single-process start.
        if self._pending:
            self._broadcast()

    def _model_variables(self):
        """The model's variables to broadcast (all of them here)."""
        return list(self.model.variables)

    def _broadcast(self):
        self._pending = False
        build_optimizer(self.model)
        variables = self._model_variables()
        if model_parallel.layout().k > 1:
            self._broadcast_model_parallel(variables)
            return
        runtime.broadcast_variables(variables, self.root_rank, prefix="bcast.model")
        runtime.broadcast_variables(
            _optimizer_variables(self.model.optimizer), self.root_rank, prefix="bcast.opt"
        )
        sent = {id(v) for v in variables}
        decorrelate_seed_generators(
            self.model, states=[v for v in seed_states(self.model) if id(v) in sent])


    def _broadcast_model_parallel(self, variables):
        """A sharded model: each shard from the first replica, the replicated weights from
        rank 0; each model group draws one dropout stream (its ranks see the same batch)."""
        layout = model_parallel.layout()
        model_parallel.broadcast_variables(
            variables, model_parallel.sharded_variable_ids(self.model), prefix="bcast.model")
        # Optimizer slots follow their weights' shards; sent over the data group only.
        optimizer_variables = _optimizer_variables(self.model.optimizer)
        model_parallel.broadcast_variables(
            optimizer_variables, {id(v) for v in optimizer_variables}, prefix="bcast.opt")
        sent = {id(v) for v in variables}
        decorrelate_seed_generators(self.model, rank=layout.data_index,
                                    states=[v for v in seed_states(self.model) if id(v) in sent])


class MetricAverage(keras.callbacks.Callback):
    """Replace each logged epoch metric by its mean over ranks (in place, for later callbacks)."""

    def _average(self, logs, where):
        if not logs or runtime.size() == 1:
            return
        keys = sorted(k for k, v in logs.items() if np.ndim(v) == 0)
        values = np.array([float(logs[k]) for k in keys], dtype=np.float64)
        averaged = runtime.allreduce(values, op="average", name=f"metrics.{where}")
        for key, value in zip(keys, averaged):
            logs[key] = float(value)

    def on_epoch_end(self, epoch, logs=None):
        self._average(logs, f"epoch{epoch}")

    def on_test_end(self, logs=None):
        self._average(logs, "test")


class ReplicaDigest(keras.callbacks.Callback):
    """At the end of training, a SHA-256 of every rank's weights and the host it ran on,
    gathered on all ranks.

    `digests` and `hosts` list them in rank order and `agree` says whether all ranks hold
    identical weights, the invariant of data-parallel training; `on_result(dict)` runs on
    the chief.

    Under model parallelism (k > 1) the ranks of a model group hold different shards by
    design: `agree` says whether every replica holds the same weights, i.e. whether the
    ranks of each data group (the same shard in every model group) agree, and the result
    adds ``model_parallel`` (k) and each rank's ``shards`` index.
    """

    def __init__(self, on_result=None):
        super().__init__()
        self.on_result = on_result
        self.digests = None
        self.hosts = None
        self.agree = None

    def on_train_end(self, logs=None):
        import hashlib
        import socket

        h = hashlib.sha256()
        for w in self.model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        # One collective for both: every rank reaches it at the same point.
        gathered = runtime.allgather_object((h.hexdigest(), socket.gethostname()), name="replica.digest")
        self.digests = [d for d, _ in gathered]
        self.hosts = [host for _, host in gathered]
        layout = model_parallel.layout()
        shards = [r % layout.k for r in range(len(self.digests))]
        self.agree = all(len({d for d, s in zip(self.digests, shards) if s == shard}) == 1
                         for shard in set(shards))
        if self.on_result is not None and runtime.is_chief():
            result = {"ranks": len(self.digests), "agree": self.agree, "digests": self.digests,
                      "hosts": self.hosts}
            if layout.k > 1:
                result.update(model_parallel=layout.k, shards=shards)
            self.on_result(result)


# optimizer -> (target rate, the rate a warmup last set): a later fit that finds the
# optimizer still at that rate resumes the same ramp instead of taking it as its target.
_RAMPS = weakref.WeakKeyDictionary()


class LearningRateWarmup(keras.callbacks.Callback):
    """Goyal et al. (2017) gradual warmup: ramp the learning rate linearly, per batch,
    from lr / factor to the optimizer's (already scaled) lr over `warmup_epochs` epochs.

    factor: how many times the scaled lr exceeds the one to start from; default the number
    of replicas (the ranks; the model groups under model parallelism), so lr scaled by the
    linear rule starts from the single-process rate. A study that scales lr by its own
    ratio (e.g. global batch / base batch) passes that ratio.

    target_lr: the rate to end at. By default the optimizer's rate when training first
    begins, kept from then on: a second `fit` (this callback or a new one) that starts
    mid-warmup continues the ramp to the same target, unless the rate was changed in
    between. A run resumed from a checkpoint written mid-warmup restores a part-warmed
    rate, so pass the target (the rate the optimizer was made with), as
    ``bwkeras.training.fit`` does.
    """

    def __init__(self, warmup_epochs, steps_per_epoch=None, verbose=0, factor=None,
                 target_lr=None):
        super().__init__()
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))
                                   or not math.isfinite(factor) or factor < 1):
            raise ValueError(f"warmup factor must be a finite number >= 1 or None, got {factor!r}")
        if target_lr is not None and (isinstance(target_lr, bool)
                                      or not isinstance(target_lr, (int, float))
                                      or not math.isfinite(target_lr) or target_lr <= 0):
            raise ValueError(f"target_lr must be a positive finite number or None, got {target_lr!r}")
        self.warmup_epochs = warmup_epochs
        self.steps_per_epoch = steps_per_epoch
        self.verbose = verbose
        self.factor = factor
        self.target_lr = None if target_lr is None else float(target_lr)
        self._explicit_target = target_lr is not None
        self._epoch = 0
        # Steps of the epoch done before this fit: a run resumed in the middle of an
        # epoch trains its rest, whose first batch is step `batch_offset` of the ramp.
        self.batch_offset = 0

    def _lr_variable(self):
        lr = self.model.optimizer.learning_rate
        if not hasattr(lr, "assign"):
            raise TypeError(
                f"learning-rate warmup needs a constant learning rate, got {lr!r}; "
                "put the warmup into the schedule instead"
            )
        return lr

    def on_train_begin(self, logs=None):
        current = float(np.asarray(self._lr_variable()))
        if not self._explicit_target:
            ramp = _RAMPS.get(self.model.optimizer)
            if ramp is not None and math.isclose(current, ramp[1], rel_tol=1e-6):
                self.target_lr = ramp[0]    # still where a warmup left it: same target
            else:
                self.target_lr = current
        self.steps = self.steps_per_epoch or self.params.get("steps") or 1

    def _set(self, value):
        lr = self._lr_variable()
        lr.assign(value)
        _RAMPS[self.model.optimizer] = (self.target_lr, float(np.asarray(lr)))

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        progress = (self._epoch + (self.batch_offset + batch) / self.steps) / self.warmup_epochs
        if progress > 1.0:
            return
        n = model_parallel.layout().d if self.factor is None else self.factor
        factor = (1.0 + progress * (n - 1)) / n
        self._set(self.target_lr * factor)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == math.ceil(self.warmup_epochs):
            self._set(self.target_lr)
            if self.verbose and runtime.is_chief():
                print(f"\nEpoch {epoch + 1}: finished learning-rate warmup to {self.target_lr:g}.")


def callbacks(warmup_epochs=0, steps_per_epoch=None, root_rank=0, verbose=0, target_lr=None):
    """The callbacks to pass to `fit`, in the order they must run.

    Put them BEFORE your own callbacks (checkpoints, CSV loggers...) so those see averaged
    metrics. Returns [the stall watchdog (several ranks, BWKERAS_STALL_SECONDS > 0),
    broadcast of initial model and optimizer state, metric averaging,
    learning-rate warmup (if warmup_epochs > 0), ending at `target_lr` if given].
    """
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, float)) \
            or not math.isfinite(warmup_epochs) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a number >= 0, got {warmup_epochs!r}")
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive int or None, got {steps_per_epoch!r}")
    result = [BroadcastInitialState(root_rank=root_rank), MetricAverage()]
    if runtime.size() > 1:
        from .watchdog import StallWatchdog, stall_seconds

        if stall_seconds() > 0:
            # First: it watches everything after it, the other callbacks' collectives included.
            result.insert(0, StallWatchdog())
    if warmup_epochs > 0:
        result.append(LearningRateWarmup(warmup_epochs, steps_per_epoch, verbose=verbose,
                                         target_lr=target_lr))
    return result
