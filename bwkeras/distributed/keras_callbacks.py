"""Callbacks that make `model.fit` data-parallel; `callbacks()` returns them in order."""
import math

import keras
import numpy as np

from .._keras import build_optimizer
from . import runtime


def _optimizer_variables(optimizer):
    variables = optimizer.variables
    return list(variables() if callable(variables) else variables)


class BroadcastInitialState(keras.callbacks.Callback):
    """Copy rank 0's model weights and optimizer state to every rank before the first update.

    Horovod's own callback broadcasts at the end of the first batch, after one update from
    unequal weights; here it happens in `on_train_begin`, so ranks that initialised with
    different seeds train exactly like a single process.
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
        if self._pending and self.model.trainable_variables:
            self._broadcast()

    def on_train_batch_end(self, batch, logs=None):
        # A model never called before fit (a subclassed model without keras.Input) has no
        # weights until the first step traces it. Then, like Horovod's callback, broadcast
        # after that first step; gradients were averaged, so ranks differ only by their
        # start. Build or call the model before fit for an exactly single-process start.
        if self._pending:
            self._broadcast()

    def _broadcast(self):
        self._pending = False
        build_optimizer(self.model)
        runtime.broadcast_variables(self.model.variables, self.root_rank, prefix="bcast.model")
        runtime.broadcast_variables(
            _optimizer_variables(self.model.optimizer), self.root_rank, prefix="bcast.opt"
        )


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
    """At the end of training, a SHA-256 of every rank's weights, gathered on all ranks.

    `digests` lists them in rank order and `agree` says whether all ranks hold identical
    weights, the invariant of data-parallel training; `on_result(dict)` runs on the chief.
    """

    def __init__(self, on_result=None):
        super().__init__()
        self.on_result = on_result
        self.digests = None
        self.agree = None

    def on_train_end(self, logs=None):
        import hashlib

        h = hashlib.sha256()
        for w in self.model.get_weights():
            h.update(np.ascontiguousarray(w).tobytes())
        self.digests = runtime.allgather_object(h.hexdigest(), name="replica.digest")
        self.agree = len(set(self.digests)) == 1
        if self.on_result is not None and runtime.is_chief():
            self.on_result({"ranks": len(self.digests), "agree": self.agree, "digests": self.digests})


class LearningRateWarmup(keras.callbacks.Callback):
    """Goyal et al. (2017) gradual warmup: ramp the learning rate linearly, per batch,
    from lr / factor to the optimizer's (already scaled) lr over `warmup_epochs` epochs.

    factor: how many times the scaled lr exceeds the one to start from; default the number
    of ranks (lr scaled by the linear rule starts from the single-process rate). A study
    that scales lr by its own ratio (e.g. global batch / base batch) passes that ratio.
    """

    def __init__(self, warmup_epochs, steps_per_epoch=None, verbose=0, factor=None):
        super().__init__()
        if factor is not None and (isinstance(factor, bool) or not isinstance(factor, (int, float))
                                   or not math.isfinite(factor) or factor < 1):
            raise ValueError(f"warmup factor must be a finite number >= 1 or None, got {factor!r}")
        self.warmup_epochs = warmup_epochs
        self.steps_per_epoch = steps_per_epoch
        self.verbose = verbose
        self.factor = factor
        self.target_lr = None
        self._epoch = 0

    def _lr_variable(self):
        lr = self.model.optimizer.learning_rate
        if not hasattr(lr, "assign"):
            raise TypeError(
                f"learning-rate warmup needs a constant learning rate, got {lr!r}; "
                "put the warmup into the schedule instead"
            )
        return lr

    def on_train_begin(self, logs=None):
        self.target_lr = float(np.asarray(self._lr_variable()))
        self.steps = self.steps_per_epoch or self.params.get("steps") or 1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        progress = (self._epoch + batch / self.steps) / self.warmup_epochs
        if progress > 1.0:
            return
        n = runtime.size() if self.factor is None else self.factor
        factor = (1.0 + progress * (n - 1)) / n
        self._lr_variable().assign(self.target_lr * factor)

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == math.ceil(self.warmup_epochs):
            self._lr_variable().assign(self.target_lr)
            if self.verbose and runtime.is_chief():
                print(f"\nEpoch {epoch + 1}: finished learning-rate warmup to {self.target_lr:g}.")


def callbacks(warmup_epochs=0, steps_per_epoch=None, root_rank=0, verbose=0):
    """The callbacks to pass to `fit`, in the order they must run.

    Put them BEFORE your own callbacks (checkpoints, CSV loggers...) so those see averaged
    metrics. Returns [broadcast of initial model and optimizer state, metric averaging,
    learning-rate warmup (if warmup_epochs > 0)].
    """
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, (int, float)) \
            or not math.isfinite(warmup_epochs) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a number >= 0, got {warmup_epochs!r}")
    if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
        raise ValueError(f"steps_per_epoch must be a positive int or None, got {steps_per_epoch!r}")
    result = [BroadcastInitialState(root_rank=root_rank), MetricAverage()]
    if warmup_epochs > 0:
        result.append(LearningRateWarmup(warmup_epochs, steps_per_epoch, verbose=verbose))
    return result
