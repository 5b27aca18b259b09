"""Keras' own arguments (name, trainable, dtype policy) survive model.save / load_model for
every model family, and files saved before their configs carried those keys still load."""
import json
import zipfile

import keras
import numpy as np
import pytest

from bwkeras._keras import KERAS3
from bwkeras.models import MLP, RecurrentForecaster, SequenceLabeler
from bwkeras.regression import PolynomialRegression
from bwkeras.timeseries import AutoRegression


def policy(name):
    return keras.DTypePolicy(name) if KERAS3 else keras.mixed_precision.Policy(name)


RNG = np.random.default_rng(0)
NETWORKS = {
    "mlp": (lambda **kw: MLP(hidden_units=(5, 3), output="softmax", n_outputs=3, **kw),
            RNG.normal(size=(8, 4))),
    "forecaster": (lambda **kw: RecurrentForecaster(cell="lstm", units=4, layers=2, horizon=2, **kw),
                   RNG.normal(size=(8, 6))),
    "labeler": (lambda **kw: SequenceLabeler(cell="gru", units=3, n_classes=3, bidirectional=True,
                                             **kw),
                RNG.normal(size=(4, 7, 2))),
}


def save_and_load(model, path):
    model.save(path)
    return keras.models.load_model(path)


@pytest.mark.parametrize("kind", NETWORKS)
@pytest.mark.parametrize("dtype", ["float64", "mixed_float16"])
def test_network_name_and_dtype_policy_survive_save_load(tmp_path, kind, dtype):
    make, x = NETWORKS[kind]
    keras.utils.set_random_seed(1)
    model = make(name=f"my_{kind}", dtype=policy(dtype) if dtype == "mixed_float16" else dtype)
    out = model.predict(x, verbose=0)
    loaded = save_and_load(model, tmp_path / f"{kind}.keras")
    assert type(loaded) is type(model) and loaded.name == f"my_{kind}"
    assert loaded.dtype_policy.name == dtype
    assert loaded.get_config() == model.get_config()
    # Every layer follows the policy: float64 weights and outputs, or float32 weights with
    # float16 outputs under mixed precision.
    variable_dtype, compute_dtype = ("float64",) * 2 if dtype == "float64" else ("float32", "float16")
    assert {getattr(w.dtype, "name", w.dtype) for w in loaded.weights} == {variable_dtype}
    predicted = loaded.predict(x, verbose=0)
    assert predicted.dtype == np.dtype(compute_dtype)
    np.testing.assert_array_equal(predicted, out)


@pytest.mark.parametrize("dtype", ["float64", policy("float64")], ids=["name", "policy"])
def test_regression_name_and_dtype_survive_save_load(tmp_path, dtype):
    model = PolynomialRegression(2, dtype=dtype, name="my_poly")
    model.set_params([0.5, -1.0, 2.0])
    x = np.linspace(-1.0, 1.0, 7)
    out = np.asarray(model(x))
    loaded = save_and_load(model, tmp_path / "poly.keras")
    assert loaded.name == "my_poly" and loaded.dtype_policy.name == "float64"
    assert loaded.get_config() == model.get_config()
    assert loaded.params.to_dict() == {"a_0": 0.5, "a_1": -1.0, "a_2": 2.0}
    loaded_out = np.asarray(loaded(x))
    assert loaded_out.dtype == np.float64
    np.testing.assert_array_equal(loaded_out, out)
    with pytest.raises(ValueError, match=r"dtype must be one of \('float32', 'float64'\)"):
        PolynomialRegression(2, dtype=policy("mixed_float16"))


def test_autoregression_name_and_dtype_survive_save_load(tmp_path):
    model = AutoRegression(lags=2, dtype="float32", name="my_ar")
    model.solve(np.sin(np.arange(40.0)) + 0.05 * np.arange(40.0))
    x = RNG.normal(size=(5, 2))
    loaded = save_and_load(model, tmp_path / "ar.keras")
    assert loaded.name == "my_ar" and loaded.dtype_policy.name == "float32"
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def rewrite_config(path, edit):
    """A copy of the .keras file at `path` whose model config went through `edit`."""
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(files["config.json"])
    edit(config["config"])
    files["config.json"] = json.dumps(config).encode()
    old = path.with_name("old-" + path.name)
    with zipfile.ZipFile(old, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return old


def test_files_saved_with_the_earlier_configs_still_load(tmp_path):
    # Earlier versions wrote name and trainable but no dtype for the networks, and the
    # regression families and AR wrote their dtype as a plain string.
    cases = [(make(name=f"old_{kind}"), x, lambda c: c.pop("dtype"))
             for kind, (make, x) in NETWORKS.items()]
    poly = PolynomialRegression(2, dtype="float64", name="old_poly")
    poly.set_params([1.0, 2.0, 3.0])
    ar = AutoRegression(lags=2, name="old_ar")
    ar.set_params({"c": 0.5, "phi_1": 0.3, "phi_2": -0.2})
    cases += [(poly, np.linspace(0.0, 1.0, 5), lambda c: c.update(dtype="float64")),
              (ar, RNG.normal(size=(4, 2)), lambda c: c.update(dtype="float64"))]
    for model, x, edit in cases:
        out = model.predict(x, verbose=0)
        path = tmp_path / f"{model.name}.keras"
        model.save(path)
        loaded = keras.models.load_model(rewrite_config(path, edit))
        assert type(loaded) is type(model) and loaded.name == model.name
        assert loaded.get_config() == model.get_config()
        np.testing.assert_array_equal(loaded.predict(x, verbose=0), out)
