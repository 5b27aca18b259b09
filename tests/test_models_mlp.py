"""MLP: real-data classification, a known smooth function, serialization, bad arguments."""
import sys

import keras
import numpy as np
import pytest

from bwkeras import datasets
from bwkeras.models import MLP


def test_digits_test_accuracy_at_least_95_percent():
    pytest.importorskip("sklearn")
    x, y = datasets.digits()
    assert x.shape == (1797, 64) and 0.0 <= x.min() and x.max() <= 1.0
    order = np.random.default_rng(0).permutation(len(x))
    test, train = order[:450], order[450:]
    keras.utils.set_random_seed(0)
    model = MLP(hidden_units=(64,), activation="logistic", output="softmax", n_outputs=10)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[train], y[train], epochs=30, batch_size=64, verbose=0)
    predicted = model.predict(x[test], verbose=0).argmax(axis=1)
    accuracy = float(np.mean(predicted == y[test]))
    print(f"digits MLP: test accuracy {accuracy:.4f}")
    # The bar; one hidden layer of 64 logistic units usually reaches ~97-98%.
    assert accuracy >= 0.95, accuracy
    np.testing.assert_allclose(model.predict(x[test[:5]], verbose=0).sum(axis=1), 1.0, rtol=1e-5)


def test_regression_mlp_recovers_a_smooth_function():
    def truth(v):
        return np.sin(2.0 * v) + 0.5 * v

    rng = np.random.default_rng(1)
    x = rng.uniform(-2.0, 2.0, size=(1000, 1)).astype(np.float32)
    y = truth(x) + rng.normal(scale=0.05, size=x.shape)
    keras.utils.set_random_seed(1)
    model = MLP(hidden_units=(32, 32), activation="logistic", output="linear", n_outputs=1)
    # Adam from lr 0.02 decaying 20x over the 60 x 32 updates, so mini-batch noise fades.
    schedule = keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=0.02, decay_steps=60 * 32, decay_rate=0.05)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=schedule), loss="mse")
    model.fit(x, y, epochs=60, batch_size=32, verbose=0)

    grid = np.linspace(-1.9, 1.9, 200, dtype=np.float32)[:, None]
    rmse = float(np.sqrt(np.mean((model.predict(grid, verbose=0) - truth(grid)) ** 2)))
    line = np.polyval(np.polyfit(x[:, 0], y[:, 0], 1), grid)
    line_rmse = float(np.sqrt(np.mean((line - truth(grid)) ** 2)))
    # The function swings by +-1.8 and the best straight line misses it by ~0.6 RMS;
    # the network must follow the curve to within 0.05 (the noise sd; it typically gets
    # ~0.02), more than 10x closer than the line.
    print(f"regression MLP: rmse {rmse:.4f}, straight line {line_rmse:.4f}")
    assert rmse < 0.05, rmse
    assert rmse < 0.1 * line_rmse, (rmse, line_rmse)


@pytest.mark.parametrize("kwargs", [
    {"hidden_units": (8, 6, 4), "activation": "relu", "output": "sigmoid", "n_outputs": 2},
    {"hidden_units": (), "activation": "logistic", "output": "softmax", "n_outputs": 3},
    {"hidden_units": [5], "activation": "arctan", "output": "linear", "n_outputs": 1},
])
def test_any_depth_and_save_load_round_trip(tmp_path, kwargs):
    keras.utils.set_random_seed(2)
    model = MLP(**kwargs)
    x = np.random.default_rng(2).normal(size=(20, 7)).astype(np.float32)
    out = model.predict(x, verbose=0)
    assert out.shape == (20, kwargs["n_outputs"])
    kernels = [w.shape for w in model.weights if len(w.shape) == 2]
    widths = [7, *kwargs["hidden_units"], kwargs["n_outputs"]]
    assert [tuple(k) for k in kernels] == list(zip(widths[:-1], widths[1:]))

    config = model.get_config()
    assert config["hidden_units"] == list(kwargs["hidden_units"])
    assert MLP.from_config(config).get_config() == config
    path = tmp_path / "mlp.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, MLP) and loaded.get_config() == config
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), out)


@pytest.mark.parametrize("kwargs, match", [
    ({"activation": "tanh"}, r"unknown activation 'tanh'; expected one of \('logistic', 'relu', 'arctan', 'softmax'\)"),
    ({"output": "relu"}, r"unknown output 'relu'; expected one of \('softmax', 'sigmoid', 'linear'\)"),
    ({"n_outputs": 0}, r"n_outputs must be an integer >= 1, got 0"),
    ({"hidden_units": 64}, r"hidden_units must be a sequence of positive integers, got 64"),
    ({"hidden_units": (16, 0)}, r"each of hidden_units \[16, 0\] must be an integer >= 1, got 0"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLP(**kwargs)


def test_digits_without_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"needs scikit-learn.*pip install scikit-learn"):
        datasets.digits()
