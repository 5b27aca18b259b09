"""bwkeras.activations against numpy, name lookup, and a .keras round trip."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from bwkeras import activations
from bwkeras._keras import KERAS3

X = np.linspace(-6.0, 6.0, 49, dtype=np.float32).reshape(7, 7)


def _np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("name, reference", [
    ("logistic", lambda x: 1.0 / (1.0 + np.exp(-x))),
    ("relu", lambda x: np.maximum(x, 0.0)),
    ("arctan", np.arctan),
    ("softmax", _np_softmax),
])
def test_values_match_numpy(name, reference):
    fn = activations.get(name)
    assert fn is getattr(activations, name)
    out = np.asarray(fn(X))
    # float32 evaluation of functions with values O(1): a few float32 ulps (1.2e-7 each).
    np.testing.assert_allclose(out, reference(X.astype(np.float64)), rtol=0, atol=1e-6)


def test_softmax_axis_and_probabilities():
    out = np.asarray(activations.softmax(X, axis=0))
    np.testing.assert_allclose(out, _np_softmax(X.T.astype(np.float64)).T, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, atol=1e-6)


def test_get_accepts_registered_names_and_functions():
    assert activations.get("bwkeras>arctan") is activations.arctan
    assert activations.get(activations.relu) is activations.relu
    for bad in ("tanh", "Logistic", "", None, 3, np.tanh):
        with pytest.raises(ValueError, match=r"unknown activation .*expected one of \('logistic', 'relu', 'arctan', 'softmax'\)"):
            activations.get(bad)


@pytest.mark.parametrize("name", activations.NAMES)
def test_keras_serializes_each_activation(name):
    fn = activations.get(name)
    restored = keras.activations.deserialize(keras.activations.serialize(fn))
    if KERAS3 or name in ("logistic", "arctan"):
        assert restored is fn
    else:
        # Keras 2 serializes any function named like one of its own built-ins ("relu",
        # "softmax") by that name, so ours load back as Keras' same-named function.
        assert restored is getattr(keras.activations, name)
    x = tf.constant(X)
    np.testing.assert_array_equal(np.asarray(restored(x)), np.asarray(fn(x)))


def test_model_with_arctan_round_trips(tmp_path):
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(4,))
    hidden = keras.layers.Dense(units=8, activation=activations.arctan)(inputs)
    outputs = keras.layers.Dense(units=3, activation=activations.get("softmax"))(hidden)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(0).normal(size=(16, 4)).astype(np.float32)
    path = tmp_path / "arctan.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.layers[1].activation is activations.arctan
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_cross_entropy_uses_the_logits_like_keras_builtins():
    """Far-off logits: a loss from clipped probabilities would stop at -log(1e-7) = 16.1;
    Keras recovers the logits behind its own softmax / sigmoid, and must behind ours."""
    logits = tf.constant([[30.0, 0.0, -30.0]])

    def losses(softmax, sigmoid):
        # Inside one traced function, as in `fit`: the loss sees the activation's graph op.
        @tf.function
        def run():
            return (keras.losses.sparse_categorical_crossentropy(tf.constant([2]), softmax(logits)),
                    keras.losses.binary_crossentropy(tf.constant([[0.0]]), sigmoid(logits[:, :1])))
        return run()

    ours = losses(activations.softmax, activations.logistic)
    theirs = losses(keras.activations.softmax, keras.activations.sigmoid)
    # Exact values: 60 + log(1 + e^-30 + e^-60) and 30 + log(1 + e^-30), in float32.
    np.testing.assert_allclose(np.asarray(ours[0]), [60.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ours[1]), [30.0], rtol=1e-6)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
