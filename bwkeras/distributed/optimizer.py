"""DistributedOptimizer: average gradients over all ranks before the update.

keras2 (Keras 2.15): Horovod's own ``horovod.tensorflow.keras.DistributedOptimizer``.
keras3: our wrapper. Keras 3's ``fit`` calls ``optimizer.apply(grads, vars)`` and never the
``compute_gradients`` / ``get_gradients`` hooks that Horovod's wrapper overrides, so with
Horovod's wrapper each rank would silently train alone. Ours overrides ``apply``.
"""
import keras
import tensorflow as tf

from .._keras import KERAS3
from . import model_parallel, runtime

COMPRESSIONS = (None, "none", "fp16")
# Gradients travel in buckets of about this many bytes (see `buckets`); None: one grouped
# allreduce of all of them after backprop. 1 MiB: the bucket size benchmarks/overlap
# measured best for the MLP at 2 ranks (docs/performance.md); PyTorch DDP's first bucket
# is 1 MB too.
DEFAULT_BUCKET_BYTES = 1 << 20


def buckets(sizes, bucket_bytes):
    """Group tensors of `sizes` bytes (in the order the model lists its variables) for the
    exchange: walking from the LAST to the first, the order in which backprop produces
    their gradients, a bucket closes as soon as it holds `bucket_bytes` or more. Returns
    lists of indices, first bucket first; `bucket_bytes` None gives one bucket of all.

    Each bucket is its own allreduce, depending only on its own gradients, so the
    exchange of the last layers' gradients runs while backprop of the first goes on."""
    order = list(reversed(range(len(sizes))))
    if bucket_bytes is None:
        return [order] if order else []
    out, current, filled = [], [], 0
    for i in order:
        current.append(i)
        filled += sizes[i]
        if filled >= bucket_bytes:
            out.append(current)
            current, filled = [], 0
    return out + ([current] if current else [])


def _check_args(optimizer, compression, backward_passes_per_step, bucket_bytes=None):
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
    if bucket_bytes is not None and (isinstance(bucket_bytes, bool) or not isinstance(bucket_bytes, int)
                                     or bucket_bytes < 1):
        raise ValueError(f"bucket_bytes must be an integer >= 1 (bytes) or None (one grouped "
                         f"allreduce), got {bucket_bytes!r}")


def DistributedOptimizer(optimizer, compression=None, backward_passes_per_step=1,
                         bucket_bytes=DEFAULT_BUCKET_BYTES):
    """Wrap a Keras optimizer so each update uses gradients averaged over all ranks.

    compression: None / "none", or "fp16" (gradients travel as float16, halving traffic).
    backward_passes_per_step: accumulate this many local gradients (their mean) before
    one allreduce and one update; `optimizer.iterations` counts updates.
    bucket_bytes: the gradients are exchanged in buckets of about this many bytes, in the
    order backprop produces them, each its own allreduce, so that the exchange overlaps
    backprop (`buckets`); None: one grouped allreduce once every gradient exists. On the
    keras2 stack Horovod's wrapper exchanges each gradient as its own op (the finest
    buckets) and None groups them into one.
    Under model parallelism (`init_model_parallel`) the gradients are averaged over the
    data group only: the ranks of a model group hold different shards.
    In a single process the optimizer is returned as it is (k == 1) or with local
    accumulation only (k > 1), so the same script runs with and without a launcher.
    """
    _check_args(optimizer, compression, backward_passes_per_step, bucket_bytes)
    hvd = runtime.horovod()
    if not KERAS3:
        if hvd is None and backward_passes_per_step == 1:
            return optimizer
        return _horovod_keras2(optimizer, compression, backward_passes_per_step, bucket_bytes)
    if hvd is None and backward_passes_per_step == 1:
        return optimizer
    return _wrap_keras3(optimizer, compression, backward_passes_per_step, _hvd_bucket_bytes=bucket_bytes)


def _horovod_keras2(optimizer, compression, backward_passes_per_step, bucket_bytes):
    runtime.horovod(required=True)
    import horovod.tensorflow.keras as hvd_keras  # Keras 2 only: Horovod's own wrapper

    comp = hvd_keras.Compression.fp16 if compression == "fp16" else hvd_keras.Compression.none
    wrapped = hvd_keras.DistributedOptimizer(
        optimizer,
        compression=comp,
        backward_passes_per_step=backward_passes_per_step,
        average_aggregated_gradients=True,
        groups=1 if bucket_bytes is None else None,
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
    _hvd_bucket_bytes = None   # one grouped allreduce (the drop-in's default path)
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
        """The gradients averaged over all ranks, one grouped allreduce per bucket
        (`buckets`); `variables` are the ones they belong to, for reductions that treat
        some variables apart."""
        hvd = runtime.horovod()
        dense = [tf.convert_to_tensor(g) if g is not None else None for g in grads]
        present = [i for i, g in enumerate(dense) if g is not None]
        # Over the data group: all ranks, unless model parallelism splits the model over
        # k of them, whose gradients are of different shards and must never be mixed.
        data_set = model_parallel.layout().data_set
        if hvd is None or not present or data_set is None:
            return dense
        comp = hvd.Compression.fp16 if self._hvd_compression == "fp16" else hvd.Compression.none
        sizes = [(dense[i].shape.num_elements() or 0) * dense[i].dtype.size for i in present]
        out = list(dense)
        for bucket in buckets(sizes, self._hvd_bucket_bytes):
            members = [present[j] for j in bucket]
            reduced = hvd.grouped_allreduce([dense[i] for i in members], op=hvd.Average,
                                            compression=comp, process_set=data_set)
            for i, r in zip(members, reduced):
                out[i] = r
        return out

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
