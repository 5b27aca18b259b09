"""The multilayer perceptron of the tutorial."""
import keras

from .. import activations
from .._checks import choice, positive_int
from .._keras import register_serializable

OUTPUTS = ("softmax", "sigmoid", "linear")


def _output_activation(output):
    return {"softmax": activations.softmax, "sigmoid": activations.logistic, "linear": None}[output]


@register_serializable(package="bwkeras", name="MLP")
class MLP(keras.Model):
    """Feed-forward network: hidden layers Z_l = sigma(alpha_0 + alpha Z_{l-1}), output
    T = beta_0 + beta Z_L and f(X) = g(T).

    hidden_units: width of each hidden layer, in order (an empty tuple gives a generalised
        linear model, e.g. multinomial logistic regression with output="softmax").
    activation: sigma, one of bwkeras.activations.NAMES ("logistic", "relu", "arctan",
        "softmax").
    output: g, "softmax" (class probabilities; use sparse_categorical_crossentropy),
        "sigmoid" (independent probabilities; binary_crossentropy) or "linear" (regression).
    n_outputs: number of outputs K (classes for softmax).
    """

    def __init__(self, hidden_units=(64,), activation="logistic", output="softmax",
                 n_outputs=1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(hidden_units, (int, str)) or not hasattr(hidden_units, "__iter__"):
            raise ValueError(
                f"hidden_units must be a sequence of positive integers, got {hidden_units!r}"
            )
        units = list(hidden_units)
        for u in units:
            positive_int(f"each of hidden_units {units!r}", u)
        self.hidden_units = tuple(int(u) for u in units)
        self.activation_name = activations.get(activation).__name__
        self.output_name = choice("output", output, OUTPUTS)
        self.n_outputs = positive_int("n_outputs", n_outputs)
        sigma = activations.get(self.activation_name)
        self.hidden = [
            keras.layers.Dense(units=u, activation=sigma, name=f"hidden_{i}")
            for i, u in enumerate(self.hidden_units)
        ]
        self.head = keras.layers.Dense(
            units=self.n_outputs, activation=_output_activation(self.output_name), name="output"
        )

    def call(self, inputs):
        z = inputs
        for layer in self.hidden:
            z = layer(z)
        return self.head(z)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "hidden_units": list(self.hidden_units),
            "activation": self.activation_name,
            "output": self.output_name,
            "n_outputs": self.n_outputs,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
