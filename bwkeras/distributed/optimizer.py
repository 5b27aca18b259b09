"""DistributedOptimizer: average gradients over all ranks before the update.

keras2 (Keras 2.15): Horovod's own ``horovod.tensorflow.keras.DistributedOptimizer``.
keras3: our wrapper. Keras 3's ``fit`` calls ``optimizer.apply(grads, vars)`` and never the
``compute_gradients`` / ``get_gradients`` hooks that Horovod's wrapper overrides, so with
Horovod's wrapper each rank would silently train alone. Ours overrides ``apply``.
"""
import keras
import tensorflow as tf

from .._keras import KERAS3
from . import runtime

COMPRESSIONS = (None, "none", "fp16")


def _check_args(optimizer, compression, backward_passes_per_step):
    base = keras.optimizers.Optimizer
    legacy = getattr(keras.optimizers, "legacy", None)
    allowed = (base,) + ((legacy.Optimizer,) if legacy is not None else ())
    if not isinstance(optimizer, allowed):
        raise TypeError(
            f"optimizer must be a Keras optimizer instance (e.g. keras.optimizers.SGD(0.01)), "
            f"got {optimizer!r} of type {type(optimizer).__name__}"
        )
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r} is not one of {COMPRESSIONS}")
    if (isinstance(backward_passes_per_step, bool) or not isinstance(backward_passes_per_step, int)
            or backward_passes_per_step < 1):
        raise ValueError(
            f"backward_passes_per_step must be an integer >= 1, got {backward_passes_per_step!r}"
        )


def DistributedOptimizer(optimizer, compression=None, backward_passes_per_step=1):
    """Wrap a Keras optimizer so each update uses gradients averaged over all ranks.

    compression: None / "none", or "fp16" (gradients travel as float16, halving traffic).
    backward_passes_per_step: accumulate this many local gradients (their mean) before
    one allreduce and one update; `optimizer.iterations` counts updates.
    In a single process the optimizer is returned as it is (k == 1) or with local
    accumulation only (k > 1), so the same script runs with and without a launcher.
    """
    _check_args(optimizer, compression, backward_passes_per_step)
    hvd = runtime.horovod()
    if not KERAS3:
        if hvd is None and backward_passes_per_step == 1:
            return optimizer
        return _horovod_keras2(optimizer, compression, backward_passes_per_step)
    if hvd is None and backward_passes_per_step == 1:
        return optimizer
    return _wrap_keras3(optimizer, compression, backward_passes_per_step)


def _horovod_keras2(optimizer, compression, backward_passes_per_step):
    runtime.horovod(required=True)
    import horovod.tensorflow.keras as hvd_keras  # Keras 2 only: Horovod's own wrapper

    comp = hvd_keras.Compression.fp16 if compression == "fp16" else hvd_keras.Compression.none
    wrapped = hvd_keras.DistributedOptimizer(
        optimizer,
        compression=comp,
        backward_passes_per_step=backward_passes_per_step,
        average_aggregated_gradients=True,
    )
    # Horovod names the dynamic class after the optimizer but leaves it in module
    # horovod._keras; point it at the optimizer's own module so a saved model loads as the
    # plain optimizer, without Horovod.
    type(wrapped).__module__ = type(optimizer).__module__
    return wrapped


class _DistributedMixin:
    """Methods grafted onto a dynamic subclass of the user's optimizer class (keras3)."""

    _hvd_compression = None
    _hvd_passes = 1
    # Accumulate the mean of the local gradients over the k passes (bwkeras), or their sum
    # (Horovod's default, average_aggregated_gradients=False).
    _hvd_average_passes = True

    def build(self, variables):
        super().build(variables)
        if self._hvd_passes > 1:
            # Plain tf.Variables, deliberately outside the optimizer's own variables: they
            # start at zero on every rank (nothing to broadcast), and a saved model keeps the
            # wrapped optimizer's exact state, so it loads as the plain optimizer.
            with tf.init_scope():
                self._hvd_accumulators = [
                    tf.Variable(tf.zeros(v.shape, dtype=v.dtype), trainable=False) for v in variables
                ]
                self._hvd_micro_step = tf.Variable(0, dtype=tf.int64, trainable=False)

    def _hvd_average(self, grads, variables):
        """The gradients averaged over all ranks (one grouped allreduce); `variables` are
        the ones they belong to, for reductions that treat some variables apart."""
        hvd = runtime.horovod()
        dense = [tf.convert_to_tensor(g) if g is not None else None for g in grads]
        present = [g for g in dense if g is not None]
        if hvd is None or not present:
            return dense
        comp = hvd.Compression.fp16 if self._hvd_compression == "fp16" else hvd.Compression.none
        reduced = iter(hvd.grouped_allreduce(present, op=hvd.Average, compression=comp))
        return [next(reduced) if g is not None else None for g in dense]

    def apply(self, grads, trainable_variables=None):
        if trainable_variables is not None and not self.built:
            self.build(list(trainable_variables))
            self.built = True
        grads = list(grads)
        variables = list(trainable_variables if trainable_variables is not None
                          else self._trainable_variables)
        if self._hvd_passes == 1:
            return super().apply(self._hvd_average(grads, variables), trainable_variables)
        k = self._hvd_passes
        for acc, g in zip(self._hvd_accumulators, grads):
            if g is not None:
                g = tf.convert_to_tensor(g)
                acc.assign_add(g / k if self._hvd_average_passes else g)
        self._hvd_micro_step.assign_add(1)

        def update():
            averaged = self._hvd_average(
                [tf.identity(acc) if g is not None else None
                 for acc, g in zip(self._hvd_accumulators, grads)], variables
            )
            super(_DistributedMixin, self).apply(averaged, trainable_variables)
            for acc in self._hvd_accumulators:
                acc.assign(tf.zeros_like(acc))
            return tf.constant(True)

        # Every rank takes the same branch: micro-step counters start equal (broadcast)
        # and advance together, so the collective inside `update` always has its peers.
        tf.cond(self._hvd_micro_step % k == 0, update, lambda: tf.constant(False))


def _distributed_class(base, mixin=_DistributedMixin, **attributes):
    # Same name and module as the wrapped class: a saved model loads without bwkeras or
    # Horovod, as the plain optimizer.
    return type(base.__name__, (mixin, base), {"__module__": base.__module__, **attributes})


def _wrap_keras3(optimizer, compression, backward_passes_per_step, mixin=_DistributedMixin,
                 **attributes):
    """A new optimizer of a dynamic subclass (`mixin` first) with `optimizer`'s config;
    `attributes` become class attributes (e.g. ``_hvd_average_passes``)."""
    cls = _distributed_class(type(optimizer), mixin,
                             _hvd_compression=compression if compression != "none" else None,
                             _hvd_passes=backward_passes_per_step, **attributes)
    return cls.from_config(optimizer.get_config())


def _distribute_in_place(optimizer, mixin=_DistributedMixin, **attributes):
    """Turn `optimizer` itself (built, with its state, e.g. just loaded) into a wrapped one
    of one backward pass per update; returns it."""
    if isinstance(optimizer, _DistributedMixin):
        return optimizer
    optimizer.__class__ = _distributed_class(type(optimizer), mixin, **attributes)
    return optimizer
