"""``horovod.tensorflow.keras.callbacks`` for Keras 2 and 3 (``bwkeras.horovod.callbacks``).

Horovod's names, arguments and learning-rate formulas (horovod/_keras/callbacks.py of
Horovod 0.28.1), on bwkeras' broadcast and metric averaging. Differences, all in the
direction of a single process with the global batch:

* BroadcastGlobalVariablesCallback broadcasts before the first update (Horovod: after the
  first batch, once the ranks took one step from different weights), at every ``fit``,
  and then gives each rank its own Keras 3 random-seed stream (dropout masks).
* MetricAverageCallback also averages ``evaluate``'s metrics.
* Momentum correction works where momentum is a constant of the compiled step (Keras 3,
  Keras 2's current optimizers): the velocity is rescaled instead of the momentum.
"""
import keras
import numpy as np
import tensorflow as tf

from . import keras_callbacks as _base
from . import runtime

__all__ = ["BroadcastGlobalVariablesCallback", "MetricAverageCallback",
           "LearningRateScheduleCallback", "LearningRateWarmupCallback", "BestModelCheckpoint"]


def _require_init():
    import horovod.tensorflow as hvd

    if not hvd.is_initialized():
        raise ValueError("Horovod has not been initialized; use hvd.init().")


def _is_variable(var):
    return isinstance(var, tf.Variable) or isinstance(var, getattr(keras, "Variable", ()))


class BroadcastGlobalVariablesCallback(_base.BroadcastInitialState):
    """Horovod's callback: every rank starts from `root_rank`'s model weights and optimizer
    state (initial, or restored from a checkpoint on that rank).

    device: where the broadcasts run ('' lets Horovod choose). local_variables: variables
    each rank keeps as they are (also ``register_local_var``).
    """

    def __init__(self, root_rank, device='', local_variables=None):
        super().__init__(root_rank=root_rank)
        self.device = device
        if local_variables is None:
            local_variables = []
        elif _is_variable(local_variables):
            local_variables = [local_variables]
        local_variables = list(local_variables)
        if not all(_is_variable(v) for v in local_variables):
            raise ValueError("All local variables must be of tf.Variable type (or Keras variables).")
        self._local = {}
        for var in local_variables:
            self.register_local_var(var)

    def register_local_var(self, var):
        """Never broadcast `var`: each rank keeps its own value."""
        self._local[id(var)] = var

    def on_train_begin(self, logs=None):
        _require_init()
        super().on_train_begin(logs)

    def _model_variables(self):
        return [v for v in super()._model_variables() if id(v) not in self._local]

    def _broadcast(self):
        with tf.device(self.device):
            super()._broadcast()


class MetricAverageCallback(_base.MetricAverage):
    """Horovod's callback: each epoch's metrics are replaced by their mean over the ranks.
    Put it before the callbacks that read metrics (ReduceLROnPlateau, TensorBoard...)."""

    def __init__(self, device=''):
        super().__init__()
        self.device = device

    def _average(self, logs, where):
        with tf.device(self.device):
            super()._average(logs, where)


class LearningRateScheduleCallback(keras.callbacks.Callback):
    """Horovod's schedule: from `start_epoch` to `end_epoch` (exclusive) the learning rate is
    ``initial_lr * multiplier(epoch)``, set at each epoch's start (staircase) or before every
    batch with a fractional epoch ``epoch + batch / steps_per_epoch``.

    multiplier: a function of the epoch, or a number m meaning ``m ** (epoch - start_epoch)``.
    momentum_correction (Goyal et al. 2017): when the rate changes by a ratio r, the step
    that follows uses momentum x r, so the velocity accumulated at the old rate does not
    overshoot. Each epoch's logs get the rate as "lr".
    """

    def __init__(self, initial_lr, multiplier, start_epoch=0, end_epoch=None, staircase=True,
                 momentum_correction=True, steps_per_epoch=None):
        super().__init__()
        if initial_lr is None:
            raise ValueError("Parameter `initial_lr` is required")
        self.initial_lr = initial_lr
        self.start_epoch = start_epoch
        self.end_epoch = end_epoch
        self.staircase = staircase
        self.momentum_correction = momentum_correction
        self.steps_per_epoch = steps_per_epoch
        self.current_epoch = None
        self.restore_momentum = None
        self._nesterov_fix = None
        if not callable(multiplier):
            self.multiplier = lambda epoch: multiplier ** (epoch - start_epoch)
        else:
            self.multiplier = multiplier

    # -- the optimizer's rate and momentum, on either Keras ------------------------------

    def _optimizer(self):
        return self.model.optimizer

    def _lr_variable(self):
        lr = self._optimizer().learning_rate
        if not hasattr(lr, "assign"):
            raise TypeError(f"{type(self).__name__} needs a constant learning rate, got {lr!r}; "
                            "put the schedule into a keras LearningRateSchedule instead")
        return lr

    def _get_lr(self):
        return float(np.asarray(self._lr_variable()))

    def _autodetect_steps_per_epoch(self):
        if self.params.get("steps"):
            return self.params["steps"]
        if self.params.get("samples") and self.params.get("batch_size"):
            return self.params["samples"] // self.params["batch_size"]
        raise ValueError("Could not autodetect the number of steps per epoch. Please specify "
                         f"the steps_per_epoch parameter to the {type(self).__name__}().")

    def _correct_momentum(self, ratio):
        """Make the next step use momentum x `ratio` (Horovod's momentum correction)."""
        opt = self._optimizer()
        momentum = opt.momentum
        if hasattr(momentum, "assign") or "momentum" in getattr(opt, "_hyper", {}):
            # A variable read by the compiled step (Keras 2 legacy optimizers): set it for
            # one step, as Horovod does.
            self.restore_momentum = float(np.asarray(momentum))
            opt.momentum = self.restore_momentum * ratio
            return
        if float(momentum) == 0.0:
            return
        # A constant of the compiled step (Keras 3; Keras 2's current optimizers). The step
        # computes v' = momentum * v + (rate-scaled gradient term) and moves the weights by
        # v' (SGD, RMSprop), so scaling v by `ratio` now is the same as momentum x ratio.
        # Before the first step the velocity does not exist yet: it is zero, nothing to scale.
        slots = self._velocities(opt)
        for slot in slots or ():
            slot.assign(slot * ratio)
        if getattr(opt, "nesterov", False):
            # Nesterov also moves the weights by momentum * v': the step after this one
            # misses momentum * (ratio - 1) * v', added once it has run.
            self._nesterov_fix = float(momentum) * (ratio - 1.0)

    def _velocities(self, opt):
        """The optimizer's velocity slots, [] before it is built; ValueError when this
        optimizer keeps them where this callback does not know to look."""
        slots = getattr(opt, "momentums", None) if hasattr(opt, "nesterov") else None
        if slots is None:
            slots = getattr(opt, "_momentums", None)
        if slots is not None:
            return list(slots)
        if not (getattr(opt, "built", False) or getattr(opt, "_built", False)):
            return []
        raise ValueError(
            f"momentum_correction=True cannot be applied to {type(opt).__name__}: its "
            "momentum is fixed when the training step is compiled and its velocity is "
            "unknown here; pass momentum_correction=False")

    def _velocity_pairs(self, opt, slots):
        """(variable, its velocity slot) for the model's trainable variables."""
        if hasattr(opt, "_get_variable_index"):                      # Keras 3
            index = opt._get_variable_index
        elif hasattr(opt, "_index_dict") and hasattr(opt, "_var_key"):  # Keras 2 current
            def index(v):
                return opt._index_dict[opt._var_key(v)]
        else:
            raise ValueError("momentum_correction=True with SGD(nesterov=True) is not "
                             "supported on this Keras; pass momentum_correction=False")
        return [(v, slots[index(v)]) for v in self.model.trainable_variables]

    def _adjust_learning_rate(self, epoch):
        old_lr = self._get_lr()
        new_lr = self.initial_lr * self.multiplier(epoch)
        self._lr_variable().assign(new_lr)
        if self.momentum_correction and hasattr(self._optimizer(), "momentum") and old_lr != 0:
            self._correct_momentum(new_lr / old_lr)

    def _restore_momentum_if_needed(self):
        if self.restore_momentum:
            self._optimizer().momentum = self.restore_momentum
            self.restore_momentum = None
        if self._nesterov_fix is not None:
            scale, self._nesterov_fix = self._nesterov_fix, None
            opt = self._optimizer()
            for var, slot in self._velocity_pairs(opt, self._velocities(opt)):
                var.assign_add(scale * slot)

    # -- Keras hooks ---------------------------------------------------------------------

    def on_train_begin(self, logs=None):
        if not self.staircase and not self.steps_per_epoch:
            self.steps_per_epoch = self._autodetect_steps_per_epoch()

    def on_epoch_begin(self, epoch, logs=None):
        self.current_epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.current_epoch < self.start_epoch
                or (self.end_epoch is not None and self.current_epoch >= self.end_epoch)):
            return
        if self.staircase and batch == 0:
            self._adjust_learning_rate(self.current_epoch)
        elif not self.staircase:
            self._adjust_learning_rate(self.current_epoch + float(batch) / self.steps_per_epoch)

    def on_train_batch_end(self, batch, logs=None):
        self._restore_momentum_if_needed()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["lr"] = self._get_lr()


class LearningRateWarmupCallback(LearningRateScheduleCallback):
    """Horovod's gradual warmup (Goyal et al. 2017): ``initial_lr / size`` to
    ``initial_lr`` over `warmup_epochs`, adjusted before every batch:

        lr(epoch) = initial_lr / size * (epoch * (size - 1) / warmup_epochs + 1)

    with the fractional epoch advanced by one batch, so each epoch ends on a round value.
    `initial_lr` is the target (the already scaled rate); it does not depend on the
    optimizer's rate when training begins, so a resumed run ramps on correctly.
    """

    def __init__(self, initial_lr, warmup_epochs=5, momentum_correction=True,
                 steps_per_epoch=None, verbose=0):
        def multiplier(epoch):
            epoch += 1.0 / self.steps_per_epoch
            n = runtime.size()
            return 1.0 / n * (epoch * (n - 1) / warmup_epochs + 1)

        super().__init__(initial_lr, multiplier, start_epoch=0, end_epoch=warmup_epochs,
                         staircase=False, momentum_correction=momentum_correction,
                         steps_per_epoch=steps_per_epoch)
        self.warmup_epochs = warmup_epochs
        self.verbose = verbose

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if epoch == self.end_epoch - 1 and self.verbose > 0 and runtime.rank() == 0:
            print(f"\nEpoch {epoch + 1}: finished gradual learning rate warmup to "
                  f"{self._get_lr():g}.")


class BestModelCheckpoint(keras.callbacks.ModelCheckpoint):
    """Horovod's: a ModelCheckpoint that keeps only the best model by `monitor`; the file
    is given as `filepath` here or set on ``.filepath`` before training (Horovod's
    estimators set it)."""

    def __init__(self, monitor='val_loss', verbose=0, save_weights_only=False, mode='auto',
                 save_freq='epoch', filepath=None):
        # Keras 3 checks the file name at construction; an unset one gets a placeholder
        # of the right kind, replaced below.
        placeholder = "best.weights.h5" if save_weights_only else "best.keras"
        super().__init__(filepath=filepath or placeholder, monitor=monitor, verbose=verbose,
                         save_best_only=True, save_weights_only=save_weights_only, mode=mode,
                         save_freq=save_freq)
        if filepath is None:
            self.filepath = None

    def on_train_begin(self, logs=None):
        if self.filepath is None:
            raise ValueError("BestModelCheckpoint has no filepath: pass filepath= or set "
                             ".filepath before training")
        super().on_train_begin(logs)

