"""A recurrent model trained data-parallel under `horovodrun -np 2`."""
import numpy as np
import pytest

from launch import check, read_outputs, run_script

pytestmark = pytest.mark.launcher

SCRIPT = """
import json, os
import numpy as np
import keras
from bwkeras import datasets, distributed as dist
from bwkeras.models import RecurrentForecaster
from bwkeras.timeseries import supervised_split

dist.init()
keras.utils.set_random_seed(100 + dist.rank())  # unequal starts: the broadcast must fix them
data = supervised_split(datasets.sunspots(), lags=9, validation=0, test=0.15)
x, y = dist.shard((data.x_train, data.y_train))
model = RecurrentForecaster(cell="lstm", units=8)
model(x[:1])
initial = [np.asarray(w).ravel().tolist() for w in model.weights]
optimizer = dist.DistributedOptimizer(
    keras.optimizers.Adam(learning_rate=dist.scale_learning_rate(0.005)))
model.compile(optimizer=optimizer, loss="mse")
history = model.fit(x, y, epochs=4, batch_size=16, callbacks=dist.callbacks(),
                    verbose=dist.fit_verbosity(0))
out = {
    "size": dist.size(),
    "initial": initial,
    "final": [np.asarray(w).ravel().tolist() for w in model.weights],
    "first_target": float(y[0, 0]),
    "n_local": len(x),
    "loss": history.history["loss"],
    "test_pred": model.predict(data.x_test, verbose=0).ravel().tolist(),
}
with open(os.path.join(os.environ["OUT_DIR"], f"rank{dist.rank()}.json"), "w") as fh:
    json.dump(out, fh)
"""


def flat(weights):
    return np.concatenate([np.asarray(w, dtype=np.float64) for w in weights])


def test_lstm_forecaster_ends_identical_on_both_ranks(tmp_path):
    ranks = read_outputs(check(run_script(tmp_path, SCRIPT, np=2, timeout=180)), 2)
    assert [r["size"] for r in ranks] == [2, 2]
    assert ranks[0]["n_local"] == ranks[1]["n_local"]  # equal steps per epoch, no hang
    assert ranks[0]["first_target"] != ranks[1]["first_target"]  # disjoint shards
    # Different seeds gave different initial weights ...
    assert np.abs(flat(ranks[0]["initial"]) - flat(ranks[1]["initial"])).max() > 1e-3
    # ... yet both ranks apply the same averaged gradient to the same broadcast start, so
    # they end bit-for-bit equal, and predict alike.
    np.testing.assert_array_equal(flat(ranks[0]["final"]), flat(ranks[1]["final"]))
    np.testing.assert_array_equal(ranks[0]["test_pred"], ranks[1]["test_pred"])
    # Training happened: weights moved from rank 0's broadcast start, and the loss fell.
    assert np.abs(flat(ranks[0]["final"]) - flat(ranks[0]["initial"])).max() > 1e-2
    assert ranks[0]["loss"][-1] < ranks[0]["loss"][0]
    # Logged losses are averaged over ranks, so both report the same numbers.
    np.testing.assert_allclose(ranks[0]["loss"], ranks[1]["loss"], rtol=1e-6)


UNBUILT = """
import json, os
import numpy as np
import keras
from bwkeras import distributed as dist
from bwkeras.models import MLP

keras.utils.set_random_seed(7 + dist.rank())  # unequal starts
rng = np.random.default_rng(dist.rank())
x = rng.random((64, 12), dtype=np.float32)
y = rng.integers(0, 3, size=64)
model = MLP(hidden_units=(16,), activation="relu", n_outputs=3)  # no weights until traced
model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.Adam(0.01)),
              loss="sparse_categorical_crossentropy")
history = model.fit(x, y, epochs=3, batch_size=16, callbacks=dist.callbacks(), verbose=0)
with open(os.path.join(os.environ["OUT_DIR"], f"rank{dist.rank()}.json"), "w") as fh:
    json.dump({"final": [np.asarray(w).ravel().tolist() for w in model.weights],
               "iterations": int(model.optimizer.iterations.numpy()),
               "loss": history.history["loss"]}, fh)
"""


def test_model_built_by_its_first_step_trains_and_ends_identical(tmp_path):
    # A subclassed model first called inside fit: the broadcast waits for its weights.
    ranks = read_outputs(check(run_script(tmp_path, UNBUILT, np=2, timeout=180)), 2)
    assert flat(ranks[0]["final"]).size == 12 * 16 + 16 + 16 * 3 + 3
    np.testing.assert_array_equal(flat(ranks[0]["final"]), flat(ranks[1]["final"]))
    assert ranks[0]["iterations"] == 3 * 4  # 64 rows per rank / batch 16 = 4 steps per epoch
    assert ranks[0]["loss"][-1] < ranks[0]["loss"][0]
