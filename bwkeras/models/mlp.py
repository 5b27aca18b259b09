"""The multilayer perceptron of the tutorial."""
import keras

from .. import activations
from .._checks import choice, integer
from .._keras import model_config, register_serializable
from ..distributed.model_parallel import check_divides
from ..parallel import ShardedModel, dense_stack

OUTPUTS = ("softmax", "sigmoid", "linear")


def _output_activation(output):
    return {"softmax": activations.softmax, "sigmoid": activations.logistic, "linear": None}[output]


@register_serializable(package="bwkeras", name="MLP")
class MLP(ShardedModel, keras.Model):
    """Feed-forward network: hidden layers Z_l = sigma(alpha_0 + alpha Z_{l-1}), output
    T = beta_0 + beta Z_L and f(X) = g(T).

    hidden_units: width of each hidden layer, in order (an empty tuple gives a generalised
        linear model, e.g. multinomial logistic regression with output="softmax").
    activation: sigma, one of bwkeras.activations.NAMES ("logistic", "relu", "arctan",
        "softmax").
    output: g, "softmax" (class probabilities; use sparse_categorical_crossentropy),
        "sigmoid" (independent probabilities; binary_crossentropy) or "linear" (regression).
    n_outputs: number of outputs K (classes for softmax).
    model_parallel: k ranks hold one copy of the model between them (tensor parallelism,
        `bwkeras.parallel`): the Dense layers go in Megatron pairs, a column-parallel layer
        (each rank holds units/k of its outputs) then a row-parallel one (each rank holds
        1/k of its inputs; one allreduce of the output); a layer left without a partner
        (the head, after an even number of hidden layers) is held whole on every rank.
        k must divide the units of every column-parallel layer (hidden_units[0], [2],
        ...) and the number of ranks. `save` writes the whole model, as model_parallel=1.
    Keras' own arguments pass through and are saved with the model: name, trainable, and
    dtype (a dtype or dtype policy, e.g. "float64" or "mixed_float16") that every layer
    follows.
    """

    def __init__(self, hidden_units=(64,), activation="logistic", output="softmax",
                 n_outputs=1, model_parallel=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(hidden_units, (int, str)) or not hasattr(hidden_units, "__iter__"):
            raise ValueError(
                f"hidden_units must be a sequence of positive integers, got {hidden_units!r}"
            )
        units = list(hidden_units)
        self.hidden_units = tuple(integer(f"each of hidden_units {units!r}", u, minimum=1)
                                  for u in units)
        self.activation_name = activations.get(activation).__name__
        self.output_name = choice("output", output, OUTPUTS)
        self.n_outputs = integer("n_outputs", n_outputs, minimum=1)
        self.model_parallel = integer("model_parallel", model_parallel, minimum=1)
        for i in range(0, len(self.hidden_units), 2):  # the column-parallel layers
            check_divides(f"hidden_units[{i}]", self.hidden_units[i], self.model_parallel)
        sigma = activations.get(self.activation_name)
        layers = dense_stack(
            list(self.hidden_units) + [self.n_outputs],
            [sigma] * len(self.hidden_units) + [_output_activation(self.output_name)],
            [f"hidden_{i}" for i in range(len(self.hidden_units))] + ["output"],
            self.model_parallel, dtype=self.dtype_policy)
        self.hidden, self.head = layers[:-1], layers[-1]

    def call(self, inputs):
        z = inputs
        for layer in self.hidden:
            z = layer(z)
        return self.head(z)

    def get_config(self):
        return model_config(
            self, super().get_config, hidden_units=list(self.hidden_units),
            activation=self.activation_name, output=self.output_name, n_outputs=self.n_outputs,
            model_parallel=self.model_parallel,
        )
