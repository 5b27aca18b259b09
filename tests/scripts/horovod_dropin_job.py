"""The drop-in `bwkeras.horovod` under a launcher, for tests/test_horovod_dropin.py.

Every rank records what it saw to $OUT_DIR/rank{r}.json: tf.config still open after
hvd.init(), the collectives (eager and in tf.function), Horovod's learning-rate callbacks
batch by batch, hvd.load_model, and the Keras 3 seed generators after the broadcast.
"""
import hashlib
import json
import os

import numpy as np
import tensorflow as tf

import bwkeras.horovod as hvd

hvd.init()
out = {"rank": hvd.rank(), "size": hvd.size()}
# A script pins its GPU by local rank right after hvd.init(): tf.config must still be open.
try:
    tf.config.set_visible_devices(tf.config.list_physical_devices("CPU"), "CPU")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    out["config_after_init"] = "ok"
except RuntimeError as exc:
    out["config_after_init"] = str(exc)

import keras  # noqa: E402

from bwkeras import distributed as dist  # noqa: E402
from bwkeras._keras import KERAS3  # noqa: E402
from bwkeras.distributed.keras_callbacks import seed_states  # noqa: E402

r, n = hvd.rank(), hvd.size()

# ---- collectives -----------------------------------------------------------------------
x = tf.constant([r + 1.0, 10.0 * (r + 1)])
out["allreduce"] = hvd.allreduce(x).numpy().tolist()
out["allreduce_sum"] = hvd.allreduce(x, op=hvd.Sum).numpy().tolist()
out["dist_allreduce"] = dist.allreduce(np.array([r + 1.0])).tolist()


@tf.function
def in_graph(t):
    return (hvd.allreduce(t, name="g.avg"), hvd.allgather(t, name="g.gather"),
            hvd.broadcast(t, 1, name="g.bcast"))


out["graph"] = [t.numpy().tolist() for t in in_graph(x)]
out["allgather"] = hvd.allgather(tf.fill([r + 1], float(r))).numpy().tolist()
out["broadcast"] = hvd.broadcast(x, root_rank=n - 1).numpy().tolist()
out["alltoall"] = hvd.alltoall(tf.constant([10 * r + j for j in range(n)])).numpy().tolist()
out["broadcast_object"] = hvd.broadcast_object({"from": r}, root_rank=n - 1)
out["allgather_object"] = hvd.allgather_object(["rank", r])
var = (keras.Variable if KERAS3 else tf.Variable)(np.full((2,), float(r), dtype="float32"))
hvd.broadcast_variables([var], root_rank=n - 1)
out["broadcast_variables"] = np.asarray(var).tolist()
out["join"] = int(hvd.join())
hvd.barrier()

# ---- Horovod's learning-rate callbacks, batch by batch ---------------------------------
initial = 0.1 * n
seen = []


class Spy(keras.callbacks.Callback):
    """Last in the list: the rate each batch runs with."""

    def on_train_batch_begin(self, batch, logs=None):
        seen.append(float(np.asarray(self.model.optimizer.learning_rate)))


keras.utils.set_random_seed(1)
model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.SGD(initial, momentum=0.9)),
              loss="mse", experimental_run_tf_function=False)
xs = np.random.default_rng(r).random((12, 2)).astype("float32")
callbacks = [
    hvd.callbacks.BroadcastGlobalVariablesCallback(0),
    hvd.callbacks.MetricAverageCallback(),
    hvd.callbacks.LearningRateWarmupCallback(initial_lr=initial, warmup_epochs=2),
    hvd.callbacks.LearningRateScheduleCallback(initial_lr=initial, multiplier=0.5,
                                               start_epoch=3, end_epoch=5),
    hvd.callbacks.LearningRateScheduleCallback(initial_lr=initial, multiplier=lambda e: 1 / (1 + e),
                                               start_epoch=5, end_epoch=6, staircase=False),
    Spy(),
]
history = model.fit(xs, xs[:, :1], batch_size=4, epochs=7, shuffle=False, verbose=0,
                    callbacks=callbacks)
out["lr_batches"] = seen
out["lr_epochs"] = [float(v) for v in history.history["lr"]]

# ---- hvd.load_model: the optimizer comes back wrapped, with its state -----------------
path = os.path.join(os.environ["OUT_DIR"], "model.keras" if KERAS3 else "model.h5")
model2 = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(3, activation="tanh"),
                           keras.layers.Dense(1)])
model2.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(0.01)), loss="mse")
model2.fit(xs, xs[:, :1], batch_size=4, epochs=1, verbose=0,
           callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
if r == 0:
    model2.save(path)
hvd.barrier()
loaded = hvd.load_model(path)
out["loaded"] = {"optimizer": type(loaded.optimizer).__name__,
                 "iterations": int(np.asarray(loaded.optimizer.iterations))}
before = [w.copy() for w in loaded.get_weights()]
loaded.fit(xs, xs[:, :1], batch_size=4, epochs=2, verbose=0, shuffle=False,
           callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)])
h = hashlib.sha256()
for w in loaded.get_weights():
    h.update(np.ascontiguousarray(w).tobytes())
out["loaded"]["digest"] = h.hexdigest()
out["loaded"]["moved"] = float(max(np.abs(a - b).max() for a, b in zip(before, loaded.get_weights())))

# ---- Keras 3 seed generators after the initial broadcast -------------------------------
if KERAS3:
    keras.utils.set_random_seed(7)   # the same on every rank: correlated noise unless fixed
    drop = keras.Sequential([keras.Input(shape=(64,)), keras.layers.Dense(64), keras.layers.Dropout(0.5)])
    drop.compile(optimizer="sgd", loss="mse")
    (state,) = seed_states(drop)
    start = state.numpy().tolist()

    def broadcast_and_draw():
        state.assign(start)
        cb = dist.BroadcastInitialState()
        cb.set_model(drop)
        cb.on_train_begin()
        after = state.numpy().tolist()
        masks = [(drop.layers[1](tf.ones((1, 64)), training=True).numpy() != 0).astype(int).ravel().tolist()
                 for _ in range(2)]
        return after, masks

    first, again = broadcast_and_draw(), broadcast_and_draw()
    out["seed"] = {"start": start, "after": first[0], "masks": first[1],
                   "repeat_after": again[0], "repeat_masks": again[1],
                   "root_start": hvd.broadcast_object(start, root_rank=0)}

with open(os.path.join(os.environ["OUT_DIR"], f"rank{r}.json"), "w") as f:
    json.dump(out, f)
