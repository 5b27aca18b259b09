"""One rank of a soak run: a short data-parallel training into a run folder.

    python benchmarks/soak_worker.py RUN_DIR [--resume]

Trains a small MLP on synthetic regression data through bwkeras' own path
(`runs.start`, `training.fit`: broadcast, metric averaging, the stall watchdog,
checkpoints every epoch), then writes the final weights to RUN_DIR/final.json.
RUN_DIR is started or continued as `--run-dir` does; --resume continues it as
`--resume` does (it must hold an intact checkpoint).

Environment:
  SOAK_PROGRESS_DIR  each rank writes rank{r}.json there after every batch: its pid, host
                     and global step. The soak controller learns from it when to inject a
                     fault and which process to signal: the fault comes from outside.
  SOAK_RAISE         "RANK:STEP": that rank raises RuntimeError when it reaches that global
                     step. The one fault a controller cannot cause from outside (an
                     exception inside a rank), so it is this script's own test-only hook.
  SOAK_EPOCHS, SOAK_STEPS  epochs and steps per epoch (default 6 and 20).
"""
import json
import os
import socket
import sys

import numpy as np

from bwkeras import distributed as dist
from bwkeras import runs, training

FEATURES, UNITS, BATCH = 64, 256, 256   # about 80k weights: a step is tens of milliseconds


def progress_callback(keras, rank, steps_per_epoch):
    folder = os.environ.get("SOAK_PROGRESS_DIR")
    raise_at = os.environ.get("SOAK_RAISE")
    raise_rank, raise_step = (int(v) for v in raise_at.split(":")) if raise_at else (None, None)

    class Progress(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            step = self.epoch * steps_per_epoch + batch + 1
            if folder:
                # Not bwkeras.atomic: progress needs no fsync, only a whole file to read.
                path = os.path.join(folder, f"rank{rank}.json")
                with open(path + ".tmp", "w") as fh:
                    json.dump({"pid": os.getpid(), "host": socket.gethostname(), "step": step}, fh)
                os.replace(path + ".tmp", path)
            if rank == raise_rank and step == raise_step:
                raise RuntimeError(f"soak: exception injected in rank {rank} at step {step}")

    return Progress()


def main(argv):
    run_dir = argv[0]
    resume = "--resume" in argv[1:]
    epochs = int(os.environ.get("SOAK_EPOCHS", "6"))
    steps = int(os.environ.get("SOAK_STEPS", "20"))
    dist.init()
    import keras

    cfg = training.RecipeConfig()
    cfg.run.tensorboard = False
    run = runs.start("soak", cfg, resume=run_dir if resume else None,
                     run_dir=None if resume else run_dir)
    size, rank = dist.size(), dist.rank()
    # The same data on every rank, each training on its own shard, in a fixed order
    # (shuffle off): a resumed run repeats the uninterrupted one's steps exactly.
    rng = np.random.default_rng(0)
    n = steps * BATCH * size
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    y = (np.tanh(x[:, :8]).sum(axis=1, keepdims=True) + 0.1 * rng.normal(size=(n, 1))).astype("float32")
    x_local, y_local = dist.shard((x, y))
    training.set_seed(0)
    model = keras.Sequential([keras.Input(shape=(FEATURES,)),
                              keras.layers.Dense(UNITS, activation="relu"),
                              keras.layers.Dense(UNITS, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.Adam(1e-3)), loss="mse")
    train = training.TrainConfig(epochs=epochs, batch_size=BATCH, learning_rate=1e-3, shuffle=False)
    training.fit(model, run, x_local, y_local, train, verbose=0,
                 extra_callbacks=[progress_callback(keras, rank, steps)])
    run.write_json("final.json", {"epochs": epochs, "initial_epoch": run.initial_epoch,
                                  "weights": [w.tolist() for w in model.get_weights()]})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
