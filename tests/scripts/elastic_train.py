"""An elastic job: bwkeras.distributed.elastic.fit under horovodrun --min-np/--max-np.

argv: marker_dir kill_at [grow_at]
The rank on host 127.0.0.1 kills itself (SIGKILL) at the end of its `kill_at`-th step,
once per job (a file in marker_dir remembers). With `grow_at`, rank 0 creates
marker_dir/grow at the end of its `grow_at`-th step (the test's discovery script then
lists a second host), and from then on waits 0.2 s per step while it is alone, so that
the job is still running when the new worker joins. Without Horovod's launcher (one
process), it is the uninterrupted reference: ELASTIC_BATCH samples per step at ELASTIC_LR.
ELASTIC_STEP_SLEEP (seconds) slows every step, and rank 0 creates marker_dir/started at the
end of its 6th step (after the first commit, at the 4th): a test that brings a node down
waits for it. Every step, the ids of the samples every
rank trained are gathered into the state (so a rolled-back step is uncounted, like its
update); when training ends, rank 0 writes them, the world sizes seen and the weights to
$OUT_DIR/final.json, and every rank its weights digest to $OUT_DIR/rank{r}.json.
"""
import hashlib
import json
import os
import signal
import socket
import sys
import time

import numpy as np
import tensorflow as tf

import keras
from bwkeras import distributed as dist
from bwkeras.distributed import elastic

marker_dir, kill_at = sys.argv[1], int(sys.argv[2])
grow_at = int(sys.argv[3]) if len(sys.argv) > 3 else 0
STEP_SLEEP = float(os.environ.get("ELASTIC_STEP_SLEEP", 0))
N, BATCH, EPOCHS, LR = 240, int(os.environ.get("ELASTIC_BATCH", 8)), 3, float(os.environ.get("ELASTIC_LR", 0.01))

dist.init()
rng = np.random.default_rng(0)
features = rng.normal(size=(N, 4)).astype("float32")
y = (features @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=N)).astype("float32")[:, None]
x = np.concatenate([features, np.arange(N, dtype="float32")[:, None]], axis=1)  # id last


class Tap(keras.layers.Layer):
    """Passes the features on and keeps the ids of the batch it trained on."""

    def build(self, shape):
        self.ids = self.add_weight(name="ids", shape=(BATCH,), initializer="zeros", trainable=False)

    def call(self, inputs, training=None):
        if training:
            ids = inputs[:, 4]
            self.ids.assign(tf.pad(ids, [[0, BATCH - tf.shape(ids)[0]]], constant_values=-1.0))
        return inputs[:, :4]


keras.utils.set_random_seed(0)
tap = Tap()
model = keras.Sequential([keras.Input(shape=(5,)), tap, keras.layers.Dense(8, activation="tanh"),
                          keras.layers.Dense(1)])
model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.SGD(0.01)), loss="mse")
state = dist.KerasState(model, trained=[], worlds=[])
host = os.environ.get("HOROVOD_HOSTNAME", socket.gethostname())


class Account(keras.callbacks.Callback):
    steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        state.worlds.append([epoch, state.seen, dist.size(), time.time()])

    def on_train_batch_end(self, batch, logs=None):
        Account.steps += 1
        time.sleep(STEP_SLEEP)
        if Account.steps == 6 and dist.rank() == 0:
            open(os.path.join(marker_dir, "started"), "w").close()
        mine = [int(i) for i in np.asarray(tap.ids) if i >= 0]
        state.trained.append([state.epoch, sorted(sum(dist.allgather_object(mine), []))])
        if grow_at and dist.rank() == 0:
            grow = os.path.join(marker_dir, "grow")
            if Account.steps == grow_at:
                with open(grow, "w") as fh:
                    fh.write(str(time.time()))
            if os.path.exists(grow) and dist.size() == 1:
                time.sleep(0.2)
        marker = os.path.join(marker_dir, "killed")
        if host == "127.0.0.1" and Account.steps == kill_at and not os.path.exists(marker):
            with open(marker, "w") as fh:
                fh.write(str(time.time()))
            os.kill(os.getpid(), signal.SIGKILL)


loss0 = float(np.mean((np.asarray(model(x)) - y) ** 2))  # before training
started = time.monotonic()
elastic.fit(state, x, y, EPOCHS, BATCH, seed=3, learning_rate=LR, commit_steps=4,
            callbacks=[Account()])
# the trainable weights: the Tap's ids are each rank's own
digest = hashlib.sha256(b"".join(np.ascontiguousarray(w.numpy()).tobytes() for w in model.trainable_weights))
out = os.environ["OUT_DIR"]
with open(os.path.join(out, f"rank{dist.rank()}.json"), "w") as fh:
    json.dump({"digest": digest.hexdigest(), "size": dist.size(), "host": host}, fh)
if dist.rank() == 0:
    with open(os.path.join(out, "final.json"), "w") as fh:
        json.dump({"trained": state.trained, "worlds": state.worlds, "size": dist.size(),
                   "lr": float(np.asarray(model.optimizer.learning_rate)),
                   "loss0": loss0, "loss": float(np.mean((np.asarray(model(x)) - y) ** 2)),
                   "seconds": time.monotonic() - started}, fh)
