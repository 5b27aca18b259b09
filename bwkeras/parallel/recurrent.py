"""Recurrent layers whose hidden units are split over the k ranks of a model group.

Rank s holds, for every gate, the columns of units s*u/k .. (s+1)*u/k of the input kernel,
the recurrent kernel and the bias: its slice of the gates depends on the whole previous
hidden state, so each step ends with one all-gather of the new hidden state (u/k units from
every rank) and the next step starts from the whole of it. The cell state of an LSTM never
leaves its rank. Per step, forward: one all-gather; backward: one allreduce (Megatron's f
in front of the recurrent matmul) and the slice of the gather.

The weights of shard s are the slices of Keras' own LSTM / GRU / SimpleRNN weights, in
the same order (kernel, recurrent_kernel, bias), and each step does Keras' arithmetic in
Keras' order, so a model sharded over k ranks computes what the plain Keras layer does,
up to float32 rounding of the few sums taken in another order.

Only what the bwkeras models use is offered: the default activations, input dropout (one
mask per sequence, as Keras draws it, the same on every rank of a model group), masking,
return_sequences, go_backwards (so ``keras.layers.Bidirectional`` works) and GRU with
reset_after=True (Keras' default).
"""
import keras

from .._checks import fraction, integer
from .._keras import register_serializable
from ..distributed import model_parallel as mp
from .initializers import shard_initializer, take_shard
from .layers import ShardedLayer


class _ShardedCell(ShardedLayer):
    """A recurrent cell holding this rank's slice of `gates` gate blocks of `units`."""

    gates = 1

    def __init__(self, units, model_parallel=1, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", **kwargs):
        mp.check_divides("units", integer("units", units, minimum=1),
                         integer("model_parallel", model_parallel, minimum=1))
        super().__init__(model_parallel=model_parallel, **kwargs)
        self.units = int(units)
        self.local_units = self.units // self.model_parallel
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        # The whole hidden state is the output and the first state; an LSTM adds its
        # cell state, which stays local.
        self.state_size = [self.units]
        self.output_size = self.units

    def _sharded_weight(self, name, full_shape, initializer):
        k, s = self.model_parallel, self.shard
        shape = tuple(full_shape[:-1]) + (full_shape[-1] // k,)
        init = shard_initializer(initializer, full_shape, len(full_shape) - 1, k, s, self.gates)
        return self.add_weight(name=name, shape=shape, initializer=init, trainable=True)

    def _full_bias(self, shape, dtype=None):
        """The whole layer's initial bias (small: built whole, then sliced)."""
        return self.bias_initializer(shape, dtype=dtype)

    def build(self, input_shape):
        n_in, gate_units = int(input_shape[-1]), self.gates * self.units
        self.kernel = self._sharded_weight("kernel", (n_in, gate_units), self.kernel_initializer)
        self.recurrent_kernel = self._sharded_weight(
            "recurrent_kernel", (self.units, gate_units), self.recurrent_initializer)
        full_shape = self._bias_shape()
        axis = len(full_shape) - 1
        shape = tuple(full_shape[:-1]) + (full_shape[-1] // self.model_parallel,)

        def bias(shape, dtype=None):
            return take_shard(self._full_bias(full_shape, dtype), axis, self.model_parallel,
                              self.shard, self.gates)
        self.bias = self.add_weight(name="bias", shape=shape, initializer=bias, trainable=True)

    def _bias_shape(self):
        return (self.gates * self.units,)

    def shard_specs(self):
        axis = len(self._bias_shape()) - 1
        return [(1, self.gates), (1, self.gates), (axis, self.gates)]

    def _recurrent(self, h_full):
        """h_full @ this rank's recurrent kernel; f first, the matmul's input gradient
        being only this rank's share."""
        return keras.ops.matmul(mp.copy_to_model_group(h_full, self.model_parallel),
                                self.recurrent_kernel)

    def _local(self, h_full):
        """This rank's units of the whole hidden state."""
        start = self.shard * self.local_units
        return h_full[:, start:start + self.local_units]

    def _gather(self, h_local):
        return mp.gather_last_axis(h_local, self.model_parallel)

    def get_config(self):
        return {
            **super().get_config(), "units": self.units,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }


@register_serializable(package="bwkeras", name="ShardedLSTMCell")
class ShardedLSTMCell(_ShardedCell):
    """Keras' LSTMCell (tanh, sigmoid gates, implementation 2) with its units split over
    the model group; unit_forget_bias as Keras'."""

    gates = 4

    def __init__(self, units, model_parallel=1, unit_forget_bias=True, **kwargs):
        super().__init__(units, model_parallel=model_parallel, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [self.units, self.local_units]

    def _full_bias(self, shape, dtype=None):
        if not self.unit_forget_bias:
            return super()._full_bias(shape, dtype)
        u = self.units  # Keras': the forget gate's bias starts at one
        return keras.ops.concatenate([self.bias_initializer((u,), dtype=dtype),
                                      keras.ops.ones((u,), dtype=dtype),
                                      self.bias_initializer((2 * u,), dtype=dtype)])

    def call(self, inputs, states, training=False):
        h_full, c = states[0], states[1]
        z = keras.ops.matmul(inputs, self.kernel)
        z = keras.ops.add(z, self._recurrent(h_full))
        z = keras.ops.add(z, self.bias)
        z0, z1, z2, z3 = keras.ops.split(z, 4, axis=1)
        i = keras.ops.sigmoid(z0)
        f = keras.ops.sigmoid(z1)
        c = f * c + i * keras.ops.tanh(z2)
        o = keras.ops.sigmoid(z3)
        h = self._gather(o * keras.ops.tanh(c))
        return h, [h, c]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@register_serializable(package="bwkeras", name="ShardedGRUCell")
class ShardedGRUCell(_ShardedCell):
    """Keras' GRUCell (tanh, sigmoid gates, reset_after=True, implementation 2) with its
    units split over the model group."""

    gates = 3

    def _bias_shape(self):
        return (2, self.gates * self.units)  # input and recurrent biases, as Keras'

    def call(self, inputs, states, training=False):
        h_full = states[0]
        input_bias, recurrent_bias = self.bias[0], self.bias[1]
        x_z, x_r, x_h = keras.ops.split(
            keras.ops.add(keras.ops.matmul(inputs, self.kernel), input_bias), 3, axis=-1)
        inner = self._recurrent(h_full) + recurrent_bias
        r_z, r_r, r_h = keras.ops.split(inner, 3, axis=-1)
        z = keras.ops.sigmoid(x_z + r_z)
        r = keras.ops.sigmoid(x_r + r_r)
        hh = keras.ops.tanh(x_h + r * r_h)
        h = self._gather(z * self._local(h_full) + (1 - z) * hh)
        return h, [h]


@register_serializable(package="bwkeras", name="ShardedSimpleRNNCell")
class ShardedSimpleRNNCell(_ShardedCell):
    """Keras' SimpleRNNCell (tanh) with its units split over the model group."""

    def __init__(self, units, model_parallel=1, **kwargs):
        super().__init__(units, model_parallel=model_parallel, **kwargs)

    def call(self, inputs, states, training=False):
        h = keras.ops.add(keras.ops.matmul(inputs, self.kernel), self.bias)
        out = self._gather(keras.ops.tanh(h + self._recurrent(states[0])))
        return out, [out]


class _ShardedRNN(keras.layers.RNN):
    """An RNN over a sharded cell: Megatron's f once on the whole input sequence (its
    backward is one allreduce, not one per step), input dropout with one mask per
    sequence, then Keras' own loop (masking, return_sequences, go_backwards)."""

    cell_class = None

    def __init__(self, units, model_parallel=1, dropout=0.0, seed=None, **kwargs):
        cell_args = {key: kwargs.pop(key) for key in list(kwargs)
                     if key in ("kernel_initializer", "recurrent_initializer",
                                "bias_initializer", "unit_forget_bias")}
        cell = self.cell_class(units, model_parallel=model_parallel,
                               dtype=kwargs.get("dtype"), name=f"{type(self).__name__.lower()}_cell",
                               **cell_args)
        super().__init__(cell, **kwargs)
        self.dropout = fraction("dropout", dropout)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed) if self.dropout > 0 else None
        self.supports_jit = False

    @property
    def units(self):
        return self.cell.units

    @property
    def model_parallel(self):
        return self.cell.model_parallel

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if training and self.dropout > 0:
            shape = keras.ops.shape(sequences)
            keep = keras.random.dropout(keras.ops.ones((shape[0], 1, shape[2]), sequences.dtype),
                                        self.dropout, seed=self.seed_generator)
            sequences = sequences * keep
        sequences = mp.copy_to_model_group(sequences, self.model_parallel)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def get_config(self):
        config = super().get_config()
        cell = config.pop("cell")["config"]
        for key in ("name", "trainable", "dtype"):
            cell.pop(key, None)
        return {**config, **cell, "dropout": self.dropout, "seed": self.seed}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


@register_serializable(package="bwkeras", name="ShardedLSTM")
class ShardedLSTM(_ShardedRNN):
    """``keras.layers.LSTM(units, dropout=...)`` with its units split over the k ranks
    of a model group (``model_parallel=k``; units divisible by k)."""

    cell_class = ShardedLSTMCell


@register_serializable(package="bwkeras", name="ShardedGRU")
class ShardedGRU(_ShardedRNN):
    """``keras.layers.GRU(units, dropout=...)`` (reset_after=True) with its units split
    over the k ranks of a model group."""

    cell_class = ShardedGRUCell


@register_serializable(package="bwkeras", name="ShardedSimpleRNN")
class ShardedSimpleRNN(_ShardedRNN):
    """``keras.layers.SimpleRNN(units, dropout=...)`` with its units split over the k
    ranks of a model group."""

    cell_class = ShardedSimpleRNNCell


SHARDED_RNN = {"lstm": ShardedLSTM, "gru": ShardedGRU, "simple": ShardedSimpleRNN}
