"""The tutorial's activation functions, usable in any Keras layer and serializable.

    sigma(v) = 1 / (1 + exp(-v))     logistic
    sigma(v) = max(0, v)             relu
    sigma(v) = arctan(v)             arctan
    g_k(T)   = exp(T_k) / sum_l exp(T_l)   softmax (output layer of a classifier)

Each function is registered under the ``bwkeras`` package, so a layer built with
``activation=bwkeras.activations.arctan`` (or ``activation=get("arctan")``) saves to a
``.keras`` file and loads back without ``custom_objects``. (Keras 2 stores ``relu`` and
``softmax`` under its own built-in names and loads its own, numerically identical, functions.)
"""
import tensorflow as tf

from ._keras import register_serializable

__all__ = ["logistic", "relu", "arctan", "softmax", "get", "NAMES"]


def _with_logits(output, logits):
    # Keras' cross-entropies recover the logits of a sigmoid / softmax output (from the
    # graph op, or from this attribute in eager mode) and compute the loss from them:
    # the same numerically stable path as Keras' own "sigmoid" and "softmax".
    try:
        output._keras_logits = logits
    except AttributeError:  # a tensor type that takes no attributes
        pass
    return output


@register_serializable(package="bwkeras", name="logistic")
def logistic(x):
    """The logistic (sigmoid) function 1 / (1 + exp(-x)), values in (0, 1)."""
    return _with_logits(tf.math.sigmoid(x), x)


@register_serializable(package="bwkeras", name="relu")
def relu(x):
    """The rectified linear unit max(0, x)."""
    return tf.nn.relu(x)


@register_serializable(package="bwkeras", name="arctan")
def arctan(x):
    """The inverse tangent, values in (-pi/2, pi/2)."""
    return tf.math.atan(x)


@register_serializable(package="bwkeras", name="softmax")
def softmax(x, axis=-1):
    """exp(x_k) / sum_l exp(x_l) along `axis`: a probability vector over classes."""
    return _with_logits(tf.nn.softmax(x, axis=axis), x)


_BY_NAME = {"logistic": logistic, "relu": relu, "arctan": arctan, "softmax": softmax}
NAMES = tuple(_BY_NAME)


def get(name):
    """The activation function called `name`: one of "logistic", "relu", "arctan", "softmax".

    The registered form "bwkeras>arctan" is accepted too; one of this module's functions
    passes through unchanged.
    """
    if callable(name) and name in _BY_NAME.values():
        return name
    if isinstance(name, str):
        key = name[len("bwkeras>"):] if name.startswith("bwkeras>") else name
        if key in _BY_NAME:
            return _BY_NAME[key]
    raise ValueError(f"unknown activation {name!r}; expected one of {NAMES}")
