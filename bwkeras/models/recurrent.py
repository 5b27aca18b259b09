"""Recurrent networks: many-to-one forecasting and per-step sequence labeling."""
import keras
import numpy as np
import tensorflow as tf

from .. import activations
from .._checks import boolean, choice, fraction, integer, real
from .._keras import model_config, register_serializable
from ..distributed.model_parallel import check_divides
from ..parallel import SHARDED_RNN, ShardedModel

CELLS = ("simple", "lstm", "gru")
_RNN = {"simple": keras.layers.SimpleRNN, "lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def _as_sequence_batch(inputs, model_name, n_features=None):
    """(batch, time, features) from (batch, time, features) or (batch, time); ValueError else.

    n_features: the feature count the model was built for; needed only when a traced
    function sees an input of unknown rank (Keras relaxes the input signature after
    retracing, e.g. once predict saw both (batch, time) and (batch, time, 1) inputs).
    """
    rank = inputs.shape.rank if hasattr(inputs.shape, "rank") else len(inputs.shape)
    if rank is None:
        if n_features is None:
            raise ValueError(f"{model_name} cannot take an input of unknown rank before it is built")
        shape = tf.shape(inputs)
        return tf.reshape(inputs, [shape[0], shape[1], n_features])
    if rank == 2:
        return tf.expand_dims(inputs, axis=-1)
    if rank == 3:
        return inputs
    raise ValueError(
        f"{model_name} expects input of rank 3 (batch, time, features) or rank 2 "
        f"(batch, time) for one feature, got rank {rank} with shape {tuple(inputs.shape)}"
    )


def _built_features(layer):
    """Input features of a built recurrent (or Bidirectional) layer, else None."""
    layer = getattr(layer, "forward_layer", layer)
    kernel = getattr(getattr(layer, "cell", None), "kernel", None)
    return None if kernel is None else int(kernel.shape[0])


def _rnn_layer(cell, units, return_sequences, dropout, name, dtype, model_parallel=1):
    if model_parallel > 1:
        return SHARDED_RNN[cell](units=units, model_parallel=model_parallel,
                                 return_sequences=return_sequences, dropout=dropout, name=name,
                                 dtype=dtype)
    return _RNN[cell](units=units, return_sequences=return_sequences, dropout=dropout, name=name,
                      dtype=dtype)


def _model_parallel(value, units):
    """model_parallel checked: an integer >= 1 that divides `units`."""
    k = integer("model_parallel", value, minimum=1)
    check_divides("units", units, k)
    return k


@register_serializable(package="bwkeras", name="RecurrentForecaster")
class RecurrentForecaster(ShardedModel, keras.Model):
    """Read a window of past values, predict the next `horizon` values.

    cell: "simple" (Elman SimpleRNN), "lstm" or "gru".
    units: hidden state size of each recurrent layer; layers: how many are stacked.
    horizon: number of future values predicted at once (output shape (batch, horizon)).
    dropout: input dropout of each recurrent layer, in [0, 1).
    model_parallel: k ranks hold one copy of the model between them: every recurrent
        layer's units are split over them (`bwkeras.parallel.ShardedLSTM`: one all-gather
        of the hidden state per time step); the head is held whole on every rank. k must
        divide units and the number of ranks. `save` writes the whole model, as the same
        model with model_parallel=1 would.

    Input: (batch, time, features), or (batch, time) for a univariate series as made by
    `bwkeras.timeseries.windows`. Keras' own arguments pass through and are saved with the
    model: name, trainable, and dtype (a dtype or dtype policy) that every layer follows.
    """

    def __init__(self, cell="lstm", units=32, layers=1, horizon=1, dropout=0.0, model_parallel=1,
                 **kwargs):
        super().__init__(**kwargs)
        self.cell = choice("cell", cell, CELLS)
        self.units = integer("units", units, minimum=1)
        self.num_layers = integer("layers", layers, minimum=1)
        self.horizon = integer("horizon", horizon, minimum=1)
        self.dropout = fraction("dropout", dropout)
        self.model_parallel = _model_parallel(model_parallel, self.units)
        self.recurrent = [
            _rnn_layer(self.cell, self.units, i < self.num_layers - 1, self.dropout,
                       name=f"{self.cell}_{i}", dtype=self.dtype_policy,
                       model_parallel=self.model_parallel)
            for i in range(self.num_layers)
        ]
        self.head = keras.layers.Dense(units=self.horizon, name="forecast", dtype=self.dtype_policy)

    def call(self, inputs, training=None):
        h = _as_sequence_batch(inputs, type(self).__name__, _built_features(self.recurrent[0]))
        for layer in self.recurrent:
            h = layer(h, training=training)
        return self.head(h)

    def get_config(self):
        return model_config(self, super().get_config, cell=self.cell, units=self.units,
                            layers=self.num_layers, horizon=self.horizon, dropout=self.dropout,
                            model_parallel=self.model_parallel)


@register_serializable(package="bwkeras", name="SequenceLabeler")
class SequenceLabeler(ShardedModel, keras.Model):
    """A class label for every time step ("semantic labeling" of a sequence).

    cell, units, layers, dropout: as in `RecurrentForecaster`.
    n_classes: number of classes (>= 2); the output is (batch, time, n_classes)
        probabilities, so train with loss="sparse_categorical_crossentropy" on integer
        labels of shape (batch, time).
    bidirectional: read each sequence in both directions (labels may use future context).
    mask_value: the value that fills padded steps (see `bwkeras.timeseries.pad_sequences`).
        A step whose features all equal it is masked: it does not update the state,
        and Keras leaves it out of the loss and of every compiled metric.
    model_parallel: units split over k ranks, as in `RecurrentForecaster`.
    name, trainable, dtype: Keras' own, as in `RecurrentForecaster`.
    """

    def __init__(self, cell="lstm", units=32, n_classes=2, bidirectional=False, layers=1,
                 dropout=0.0, mask_value=0.0, model_parallel=1, **kwargs):
        super().__init__(**kwargs)
        self.cell = choice("cell", cell, CELLS)
        self.units = integer("units", units, minimum=1)
        self.n_classes = integer("n_classes", n_classes, minimum=2)
        self.bidirectional = boolean("bidirectional", bidirectional)
        self.num_layers = integer("layers", layers, minimum=1)
        self.dropout = fraction("dropout", dropout)
        # Infinity is a fine padding value; NaN never equals itself, so it would mask nothing.
        self.mask_value = real("mask_value", mask_value, finite=False)
        self.model_parallel = _model_parallel(model_parallel, self.units)
        dtype = self.dtype_policy
        self.masking = keras.layers.Masking(mask_value=self.mask_value, name="masking", dtype=dtype)
        self.recurrent = []
        for i in range(self.num_layers):
            layer = _rnn_layer(self.cell, self.units, True, self.dropout, name=f"{self.cell}_{i}",
                               dtype=dtype, model_parallel=self.model_parallel)
            if self.bidirectional:
                layer = keras.layers.Bidirectional(layer, name=f"bidirectional_{i}", dtype=dtype)
            self.recurrent.append(layer)
        self.head = keras.layers.Dense(
            units=self.n_classes, activation=activations.softmax, name="labels", dtype=dtype
        )

    def call(self, inputs, training=None):
        h = self.masking(_as_sequence_batch(
            inputs, type(self).__name__, _built_features(self.recurrent[0])))
        for layer in self.recurrent:
            h = layer(h, training=training)
        return self.head(h)

    # Integer labels are checked before Keras sees them: an out-of-range label would
    # otherwise give a NaN loss (CPU) or a crash deep inside the loss (GPU).
    def check_labels(self, y):
        """ValueError unless every label in `y` is an integer in [0, n_classes)."""
        if y is None or isinstance(y, tf.data.Dataset):
            return
        labels = np.asarray(y)
        if labels.dtype.kind not in "iuf" or labels.size == 0:
            raise ValueError(
                f"labels must be a non-empty array of integers in [0, {self.n_classes}), "
                f"got dtype {labels.dtype} and shape {labels.shape}"
            )
        bad = (labels < 0) | (labels >= self.n_classes) | (labels != np.round(labels))
        if np.any(bad):
            raise ValueError(
                f"labels must be integers in [0, n_classes) = [0, {self.n_classes}), got "
                f"{labels[bad].ravel()[0].item()!r} (first of {int(bad.sum())} bad labels)"
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        self.check_labels(y)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self.check_labels(y)
        return super().evaluate(x, y, *args, **kwargs)

    def get_config(self):
        return model_config(self, super().get_config, cell=self.cell, units=self.units,
                            n_classes=self.n_classes, bidirectional=self.bidirectional,
                            layers=self.num_layers, dropout=self.dropout,
                            mask_value=self.mask_value, model_parallel=self.model_parallel)
