"""A data-parallel training run through bwkeras.training.fit, stopped inside an epoch.

argv: run_dir commit_steps signal_at
signal_at: the step (counted over this process's whole training) at whose end the last
rank sends itself SIGUSR1, as a scheduler's warning would; -1 for none. Each rank writes
its final weights to $OUT_DIR/rank{r}.json when training ends normally.
"""
import json
import os
import signal
import sys

import numpy as np

import keras
from bwkeras import distributed as dist
from bwkeras import runs, training

run_dir, commit_steps, signal_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

dist.init()
rank, size = dist.rank(), dist.size()

rng = np.random.default_rng(0)
x = rng.normal(size=(200, 4)).astype("float32")
y = (x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=200)).astype("float32")[:, None]
x_local, y_local = dist.shard((x, y))   # 100 per rank: 13 steps of 8 (the last of 4)

# Different initial weights on every rank: the broadcast (or the checkpoint) must win.
keras.utils.set_random_seed(100 + 7 * rank)
model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(8, activation="tanh"),
                          keras.layers.Dense(1)])
# Adam: its moments are optimizer state a resume must restore exactly.
model.compile(optimizer=dist.DistributedOptimizer(
    keras.optimizers.Adam(dist.scale_learning_rate(0.01))), loss="mse")

cfg = training.RecipeConfig(run=training.RunConfig(tensorboard=False))
train = training.TrainConfig(epochs=3, batch_size=8, shuffle=True, seed=5,
                             commit_steps=commit_steps)
run = runs.start("stoptest", cfg, run_dir=run_dir)


class Warn(keras.callbacks.Callback):
    """The scheduler's warning, on one rank only, at the end of step `signal_at`."""

    steps = 0

    def on_train_batch_end(self, batch, logs=None):
        Warn.steps += 1
        if Warn.steps == signal_at and rank == size - 1:
            os.kill(os.getpid(), signal.SIGUSR1)


history = training.fit(model, run, x_local, y_local, train, extra_callbacks=[Warn()], verbose=0)
with open(os.path.join(os.environ["OUT_DIR"], f"rank{rank}.json"), "w") as fh:
    json.dump({"rank": rank, "size": size, "steps": Warn.steps, "epochs": list(history.epoch),
               "iterations": int(np.asarray(model.optimizer.iterations)),
               "weights": [w.tolist() for w in model.get_weights()]}, fh)
