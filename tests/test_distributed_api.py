"""bwkeras.distributed in a single process: same calls, size 1, clear errors."""
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras
from bwkeras import distributed as dist


def test_import_is_lazy_and_quiet():
    code = ("import sys, bwkeras; "
            "assert 'horovod' not in sys.modules and 'tensorflow' not in sys.modules, sorted(sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""


def test_distributed_does_not_import_horovod_in_a_lone_process():
    code = ("import sys; from bwkeras import distributed as d; d.init(); "
            "print(d.rank(), d.size(), d.local_rank(), d.is_chief(), 'horovod' in sys.modules)")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("HOROVOD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["0", "1", "0", "True", "False"]


def test_single_process_collectives_are_identities():
    a = np.arange(6.0).reshape(2, 3)
    for op in ("sum", "average", "min", "max"):
        np.testing.assert_array_equal(dist.allreduce(a, op=op), a)
    np.testing.assert_array_equal(dist.allgather(a), a)
    np.testing.assert_array_equal(dist.broadcast(a), a)
    assert dist.allgather_object({"k": 1}) == [{"k": 1}]
    with pytest.raises(ValueError, match="'median'"):
        dist.allreduce(a, op="median")


@pytest.mark.parametrize("rule, expected", [("linear", 0.4), ("sqrt", 0.2), ("none", 0.1)])
def test_scale_learning_rate(rule, expected):
    assert dist.scale_learning_rate(0.1, rule, size=4) == pytest.approx(expected)
    assert dist.scale_learning_rate(0.1, rule) == pytest.approx(0.1)  # size 1 here


@pytest.mark.parametrize("lr, rule, match", [
    (0.1, "cubic", "'cubic'.*linear.*sqrt.*none"),
    (-1.0, "linear", "-1.0"),
    (float("nan"), "linear", "nan"),
    ("0.1", "linear", "'0.1'"),
])
def test_scale_learning_rate_rejects_bad_values(lr, rule, match):
    with pytest.raises(ValueError, match=match):
        dist.scale_learning_rate(lr, rule)


def test_callbacks_order_and_validation():
    cbs = dist.callbacks(warmup_epochs=2)
    assert [type(c).__name__ for c in cbs] == ["BroadcastInitialState", "MetricAverage", "LearningRateWarmup"]
    assert len(dist.callbacks()) == 2
    for bad in (-1, float("inf"), "2", True):
        with pytest.raises(ValueError, match="warmup_epochs"):
            dist.callbacks(warmup_epochs=bad)


def test_optimizer_argument_errors():
    with pytest.raises(TypeError, match="Keras optimizer.*'sgd'.*str"):
        dist.DistributedOptimizer("sgd")
    with pytest.raises(ValueError, match="'int8'.*fp16"):
        dist.DistributedOptimizer(keras.optimizers.SGD(0.1), compression="int8")
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="backward_passes_per_step"):
            dist.DistributedOptimizer(keras.optimizers.SGD(0.1), backward_passes_per_step=bad)


def test_single_process_optimizer_is_the_optimizer_itself():
    opt = keras.optimizers.SGD(0.1)
    assert dist.DistributedOptimizer(opt) is opt


def test_shard_numpy_pandas_and_tuples():
    x = np.arange(11)
    parts = [dist.shard(x, rank=r, size=3) for r in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]               # 11 // 3; two left over
    assert sorted(np.concatenate(parts).tolist()) == list(range(9))  # disjoint, nothing twice
    frame = pd.DataFrame({"a": np.arange(10), "b": np.arange(10) * 2})
    xs, ys = dist.shard((frame, frame["b"].to_numpy()), rank=1, size=2)
    assert xs["a"].tolist() == [1, 3, 5, 7, 9] and ys.tolist() == [2, 6, 10, 14, 18]
    d = dist.shard({"x": x[:4], "y": x[:4] * 10}, rank=0, size=2)
    assert d["y"].tolist() == [0, 20]
    np.testing.assert_array_equal(dist.shard(x), x)           # size 1: everything


def test_shard_dataset_equal_counts():
    ds = tf.data.Dataset.range(11)
    parts = [list(dist.shard(ds, rank=r, size=2).as_numpy_iterator()) for r in range(2)]
    assert [len(p) for p in parts] == [5, 5]
    assert sorted(parts[0] + parts[1]) == list(range(10))
    unknown = ds.filter(lambda v: v < 100)
    with pytest.raises(ValueError, match="unknown cardinality"):
        dist.shard(unknown, rank=0, size=2)


@pytest.mark.parametrize("data, match", [
    ((np.zeros(4), np.zeros(5)), "same length.*4, 5"),
    (np.zeros(1), "1 samples over 2 ranks"),
    ([1, 2, 3, 4], "got int"),
])
def test_shard_errors(data, match):
    with pytest.raises((ValueError, TypeError), match=match):
        dist.shard(data, rank=0, size=2)
    with pytest.raises(ValueError, match="rank=2, size=2"):
        dist.shard(np.zeros(4), rank=2, size=2)


def test_warmup_ramps_from_lr_over_size_to_lr(monkeypatch):
    # The ramp is Goyal et al.'s: lr/size at the start, lr after warmup_epochs, linear per batch.
    import bwkeras.distributed.keras_callbacks as cb_module
    monkeypatch.setattr(cb_module.runtime, "size", lambda: 4)
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.4), loss="mse")
    x = np.zeros((8, 1), "float32")
    warm = cb_module.LearningRateWarmup(warmup_epochs=2)
    model.fit(x, x, batch_size=2, epochs=3, verbose=0, callbacks=[warm, Spy()])
    # 4 steps per epoch: progress p = step / 8 over the first two epochs.
    expected = [0.4 * (1 + p * 3) / 4 for p in np.arange(8) / 8] + [0.4] * 4
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def test_warmup_factor_sets_the_ramp_whatever_the_ranks():
    # A study scaling lr by its own ratio (global batch / base batch) ramps from lr / factor,
    # here in a single process.
    from bwkeras.distributed.keras_callbacks import LearningRateWarmup
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.8), loss="mse")
    x = np.zeros((8, 1), "float32")
    warm = LearningRateWarmup(warmup_epochs=1, factor=16)
    model.fit(x, x, batch_size=2, epochs=2, verbose=0, callbacks=[warm, Spy()])
    expected = [0.8 * (1 + p * 15) / 16 for p in np.arange(4) / 4] + [0.8] * 4
    np.testing.assert_allclose(seen, expected, rtol=1e-6)
    for bad in (0.5, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="warmup factor must be a finite number >= 1"):
            LearningRateWarmup(warmup_epochs=1, factor=bad)


def test_wrapped_optimizer_saves_and_loads_as_the_plain_one(tmp_path):
    # backward_passes_per_step=2 wraps even in a single process (local accumulation).
    x = np.random.default_rng(1).random((16, 2)).astype("float32")
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.Adam(0.01), backward_passes_per_step=2),
                  loss="mse")
    before = [w.copy() for w in model.get_weights()]
    model.fit(x, x[:, :1], batch_size=4, epochs=2, verbose=0)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer).__name__ == "Adam"
    assert type(loaded.optimizer).__module__.startswith("keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def _ramp_model(lr):
    model = keras.Sequential([keras.Input(shape=(1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(lr), loss="mse")
    return model


def _lr(model):
    return float(np.asarray(model.optimizer.learning_rate))


def test_warmup_resumed_by_a_second_fit_ends_at_the_target():
    # SGD(0.2), factor 2, 2 warmup epochs of 4 steps. Interrupted after epoch 1, the
    # optimizer holds the part-warmed 0.1375; a second fit (a new callback, as a script
    # calling dist.callbacks() again makes) must still ramp to 0.2, not to 0.1375.
    from bwkeras.distributed.keras_callbacks import LearningRateWarmup
    x = np.zeros((8, 1), "float32")
    model = _ramp_model(0.2)
    model.fit(x, x, batch_size=2, epochs=1, verbose=0,
              callbacks=[LearningRateWarmup(warmup_epochs=2, factor=2)])
    assert _lr(model) == pytest.approx(0.2 * (1 + 3 / 8) / 2)   # mid-warmup
    model.fit(x, x, batch_size=2, initial_epoch=1, epochs=3, verbose=0,
              callbacks=[LearningRateWarmup(warmup_epochs=2, factor=2)])
    assert _lr(model) == pytest.approx(0.2)
    # The same callback fitted again keeps its target too.
    model = _ramp_model(0.2)
    warm = LearningRateWarmup(warmup_epochs=2, factor=2)
    model.fit(x, x, batch_size=2, epochs=1, verbose=0, callbacks=[warm])
    model.fit(x, x, batch_size=2, initial_epoch=1, epochs=2, verbose=0, callbacks=[warm])
    assert _lr(model) == pytest.approx(0.2)


def test_warmup_takes_a_rate_set_between_fits_as_the_new_target():
    from bwkeras.distributed.keras_callbacks import LearningRateWarmup
    x = np.zeros((8, 1), "float32")
    model = _ramp_model(0.2)
    model.fit(x, x, batch_size=2, epochs=1, verbose=0,
              callbacks=[LearningRateWarmup(warmup_epochs=2, factor=2)])
    model.optimizer.learning_rate.assign(0.05)          # the user's own choice
    model.fit(x, x, batch_size=2, initial_epoch=1, epochs=3, verbose=0,
              callbacks=[LearningRateWarmup(warmup_epochs=2, factor=2)])
    assert _lr(model) == pytest.approx(0.05)


def test_warmup_target_lr_serves_a_run_restored_mid_warmup():
    # A checkpoint written mid-warmup restores the part-warmed rate into a fresh optimizer
    # (another process: nothing remembered); the target comes from the caller.
    from bwkeras.distributed.keras_callbacks import LearningRateWarmup
    x = np.zeros((8, 1), "float32")
    model = _ramp_model(0.1375)
    model.fit(x, x, batch_size=2, initial_epoch=1, epochs=3, verbose=0,
              callbacks=[LearningRateWarmup(warmup_epochs=2, factor=2, target_lr=0.2)])
    assert _lr(model) == pytest.approx(0.2)
    for bad in (0.0, -1.0, float("nan"), "0.2", True):
        with pytest.raises(ValueError, match="target_lr must be a positive finite number"):
            LearningRateWarmup(warmup_epochs=1, target_lr=bad)
    assert dist.callbacks(warmup_epochs=1, target_lr=0.3)[-1].target_lr == 0.3
