"""Tensor-parallel Dense layers (Megatron style) over a model group of k ranks.

A column-parallel layer followed by a row-parallel one is a two-layer block that costs one
allreduce forward (the row layer's partial sums) and one backward (the column layer's
input gradient):

    x (replicated) -> f -> x @ A[:, shard] -> sigma -> h[:, shard]      ColumnParallelDense
    h[:, shard] -> h[:, shard] @ B[shard, :] -> g -> + b -> y (replicated)  RowParallelDense

f and g are `bwkeras.distributed.model_parallel.copy_to_model_group` and
`reduce_from_model_group`. The weights of shard s are the slices of a plain Dense layer's
kernel and bias that `shard_specs` describe, so `full_weights` / `set_full_weights` move
between a sharded layer and the one-process Dense it stands for.
"""
import keras

from .._checks import boolean, integer
from .._keras import KERAS3, register_serializable
from ..distributed import model_parallel as mp
from .initializers import shard_initializer


class ShardedLayer(keras.layers.Layer):
    """A layer whose weights are split over the k ranks of a model group.

    Subclasses define `shard_specs()`: for each weight in `self.weights` order, None
    (replicated: every rank holds it whole) or (axis, blocks): the rank holds its 1/k of
    each of `blocks` equal blocks along `axis`.
    """

    # Horovod's collectives cannot run inside XLA: a model holding this layer never
    # compiles with jit_compile (Keras checks every layer's supports_jit).
    supports_jit = False

    def __init__(self, model_parallel=1, **kwargs):
        super().__init__(**kwargs)
        self.model_parallel = integer("model_parallel", model_parallel, minimum=1)
        if self.model_parallel > 1 and not KERAS3:
            raise ValueError(f"model_parallel={self.model_parallel} needs Keras 3 (its layers' "
                             f"custom gradients and optimizer); this is Keras "
                             f"{keras.__version__}: use model_parallel=1")
        # The layout is read when the layer is made: k must fit the job (ValueError else).
        self._layout = mp.init_model_parallel(self.model_parallel) if self.model_parallel > 1 \
            else None

    @property
    def shard(self):
        """This rank's shard index, 0 .. model_parallel - 1."""
        return 0 if self._layout is None else self._layout.shard

    def shard_specs(self):
        raise NotImplementedError

    @property
    def sharded_variables(self):
        """The weights that differ between the ranks of a model group."""
        return [w for w, spec in zip(self.weights, self.shard_specs()) if spec is not None]

    def full_weights(self):
        """The weights of the whole layer as numpy arrays, on every rank of the model
        group: a collective over it (call on all its ranks)."""
        out = []
        for i, (w, spec) in enumerate(zip(self.weights, self.shard_specs())):
            value = keras.ops.convert_to_numpy(w)
            if spec is not None:
                value = mp.gather_shards(value, spec[0], self.model_parallel, spec[1],
                                         name=f"bwkeras.full.{self.name}.{i}")
            out.append(value)
        return out

    def set_full_weights(self, weights):
        """Set this rank's shard from the whole layer's weights (no communication)."""
        specs = self.shard_specs()
        if len(weights) != len(specs):
            raise ValueError(f"layer {self.name!r} holds {len(specs)} weights, got "
                             f"{len(weights)} full weights")
        local = []
        for w, full, spec in zip(self.weights, weights, specs):
            part = full if spec is None else mp.split_shard(full, spec[0], self.model_parallel,
                                                            self.shard, spec[1])
            if tuple(part.shape) != tuple(w.shape):
                raise ValueError(f"layer {self.name!r}: weight {w.path or w.name} has shard "
                                 f"shape {tuple(w.shape)}, the full weight {tuple(full.shape)} "
                                 f"gives {tuple(part.shape)}")
            local.append(part)
        self.set_weights(local)

    def get_config(self):
        return {**super().get_config(), "model_parallel": self.model_parallel}


class _ParallelDense(ShardedLayer):
    """What both parallel Dense layers share: the arguments of ``keras.layers.Dense``."""

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", model_parallel=1, **kwargs):
        super().__init__(model_parallel=model_parallel, **kwargs)
        self.units = integer("units", units, minimum=1)
        self.activation = keras.activations.get(activation)
        self.use_bias = boolean("use_bias", use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _weight(self, name, full_shape, axis, initializer):
        k, s = self.model_parallel, self.shard
        shape = list(full_shape)
        if axis is not None:
            shape[axis] //= k
        init = initializer if axis is None else shard_initializer(
            initializer, full_shape, axis, k, s)
        return self.add_weight(name=name, shape=tuple(shape), initializer=init, trainable=True)

    def get_config(self):
        return {
            **super().get_config(), "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@register_serializable(package="bwkeras", name="ColumnParallelDense")
class ColumnParallelDense(_ParallelDense):
    """Dense layer whose `units` outputs are split over the model group: this rank holds
    kernel[:, shard] and bias[shard] and returns its units/k outputs (the input of a
    `RowParallelDense`, or of `gather_last_axis`).

    units: the whole layer's outputs, divisible by model_parallel.
    model_parallel: k, the ranks of a model group; the job must be laid out for it
    (`bwkeras.distributed.init_model_parallel`). 1 gives a plain Dense.
    Other arguments as ``keras.layers.Dense``.
    """

    def __init__(self, units, model_parallel=1, **kwargs):
        # The arguments first, then the job (ShardedLayer): a wrong width is wrong anywhere.
        mp.check_divides("units", integer("units", units, minimum=1),
                         integer("model_parallel", model_parallel, minimum=1))
        super().__init__(units, model_parallel=model_parallel, **kwargs)

    def build(self, input_shape):
        n_in = int(input_shape[-1])
        self.kernel = self._weight("kernel", (n_in, self.units), 1, self.kernel_initializer)
        self.bias = self._weight("bias", (self.units,), 0, self.bias_initializer) \
            if self.use_bias else None

    def shard_specs(self):
        return [(1, 1)] + ([(0, 1)] if self.use_bias else [])

    def call(self, inputs):
        x = mp.copy_to_model_group(inputs, self.model_parallel)
        y = keras.ops.matmul(x, self.kernel)
        if self.use_bias:
            y = keras.ops.add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units // self.model_parallel,)


@register_serializable(package="bwkeras", name="RowParallelDense")
class RowParallelDense(_ParallelDense):
    """Dense layer whose inputs are split over the model group: this rank takes its
    slice of the input features (a `ColumnParallelDense`'s output), multiplies by
    kernel[shard, :], and the partial products are summed over the group (one allreduce)
    before the bias, held whole on every rank, and the activation. The output is the
    whole layer's, the same on every rank.

    units: outputs (not split). The whole layer's inputs, k times this rank's, must be
    divisible by model_parallel (they are, when they come from a ColumnParallelDense).
    """

    def build(self, input_shape):
        n_in = int(input_shape[-1]) * self.model_parallel
        self.kernel = self._weight("kernel", (n_in, self.units), 0, self.kernel_initializer)
        self.bias = self._weight("bias", (self.units,), None, self.bias_initializer) \
            if self.use_bias else None

    def shard_specs(self):
        return [(0, 1)] + ([None] if self.use_bias else [])

    def call(self, inputs):
        y = mp.reduce_from_model_group(keras.ops.matmul(inputs, self.kernel), self.model_parallel)
        if self.use_bias:
            y = keras.ops.add(y, self.bias)
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)


def dense_stack(units, activations, names, model_parallel=1, **kwargs):
    """Dense layers of `units` outputs each (the last is the model's head), sharded over
    `model_parallel` ranks in Megatron pairs: layer 2i column-parallel, layer 2i+1
    row-parallel; a last layer without a partner is a plain, replicated Dense. With
    model_parallel == 1 they are all plain ``keras.layers.Dense``.

    The column layers' units must be divisible by model_parallel; the ValueError names
    the layer (``names[i]``). kwargs (e.g. dtype) go to every layer.
    """
    k = integer("model_parallel", model_parallel, minimum=1)
    if k > 1 and len(units) < 2:
        raise ValueError(f"model_parallel={k} needs at least two Dense layers to split (a "
                         f"column-parallel and a row-parallel one), got {len(units)}: give "
                         "the model a hidden layer, or use model_parallel=1")
    layers = []
    for i, (n, act, name) in enumerate(zip(units, activations, names)):
        if k == 1 or (i % 2 == 0 and i == len(units) - 1):
            layers.append(keras.layers.Dense(units=n, activation=act, name=name, **kwargs))
        elif i % 2 == 0:
            layers.append(ColumnParallelDense(units=n, activation=act, name=name,
                                              model_parallel=k, **kwargs))
        else:
            layers.append(RowParallelDense(units=n, activation=act, name=name,
                                           model_parallel=k, **kwargs))
    return layers
