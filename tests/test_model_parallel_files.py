"""Whole-model files of sharded models: saved on k = 2 ranks, loaded in one process, and
back (tests/scripts/model_parallel_files.py, under a real launcher with a hard timeout)."""
from pathlib import Path

import numpy as np
import pytest

import keras
from bwkeras import models  # noqa: F401  (registers the classes the files name)
from bwkeras.distributed import model_parallel as mp
from launch import check, read_outputs, run_file

SCRIPT = Path(__file__).parent / "scripts" / "model_parallel_files.py"
pytestmark = [pytest.mark.launcher, pytest.mark.timeout(600),
              pytest.mark.skipif(keras.__version__.startswith("2."), reason="model parallelism needs Keras 3")]
X_MLP = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
X_SEQ = np.random.default_rng(1).normal(size=(6, 7, 2)).astype("float32")
INPUTS = {"mlp": X_MLP, "lstm": X_SEQ}
# The same weights give the same predictions up to float32 rounding: the sharded MLP sums
# its row-parallel products in two halves plus an allreduce, the plain one in one matmul
# (a few ulps of outputs of order 1); the LSTM's gate columns sum alike in both.
ATOL = 1e-6


def run(tmp_path, mode, folder):
    proc = check(run_file(tmp_path, SCRIPT, np=2, args=(mode, folder), timeout=300))
    return read_outputs(proc, 2)


def test_saved_on_two_ranks_loads_in_one_process_with_the_same_predictions(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    ranks = run(tmp_path, "save", folder)
    assert all(r["mlp_exists"] and r["lstm_exists"] for r in ranks)
    for name, x in INPUTS.items():
        np.testing.assert_array_equal(ranks[0][name], ranks[1][name])  # one model, two ranks
        loaded = keras.models.load_model(folder / f"{name}.keras")
        assert loaded.model_parallel == 1  # an ordinary one-process model
        np.testing.assert_allclose(loaded.predict(x, verbose=0), ranks[0][name], rtol=0, atol=ATOL)
    # the weights file alone, into a model made in this process
    plain = models.MLP(hidden_units=(8, 6, 4), output="linear", n_outputs=2)
    plain(X_MLP[:1])
    plain.load_weights(folder / "mlp.weights.h5")
    np.testing.assert_allclose(plain.predict(X_MLP, verbose=0), ranks[0]["mlp"], rtol=0, atol=ATOL)


def test_saved_in_one_process_loads_onto_two_ranks_shard_by_shard(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    keras.utils.set_random_seed(7)
    expected, kernels = {}, {}
    for name, model in {
        "mlp": models.MLP(hidden_units=(8, 6, 4), output="linear", n_outputs=2),
        "lstm": models.RecurrentForecaster(cell="lstm", units=8, layers=2, horizon=3),
    }.items():
        x = INPUTS[name]
        model(x[:1])
        model.save(folder / f"plain-{name}.keras")
        expected[name] = model.predict(x, verbose=0)
        kernels[name] = np.asarray(model.weights[0])
    ranks = run(tmp_path, "load", folder)
    for name in INPUTS:
        for r in ranks:
            np.testing.assert_allclose(r[name], expected[name], rtol=0, atol=ATOL)
    # each rank holds its own half of the first (column-parallel / LSTM) kernel
    for r, out in enumerate(ranks):
        np.testing.assert_array_equal(out["mlp_first_kernel"], mp.split_shard(kernels["mlp"], 1, 2, r))
        np.testing.assert_array_equal(out["lstm_first_kernel"],
                                      mp.split_shard(kernels["lstm"], 1, 2, r, blocks=4))
