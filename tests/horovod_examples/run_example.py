"""Run Horovod's example scripts here, small, and record what each rank ended with.

    python run_example.py SCRIPT [ARGS...] [--then SCRIPT [ARGS...]]...
                                         (under horovodrun / mpirun, or alone)

Each script runs as `__main__`, untouched (its one change, the import line, is in the
file; see README.md), one after the other in the same processes (one TensorFlow start
and one Horovod start for all). Around them this harness:

* makes ``tf.keras.datasets.mnist.load_data`` return a stand-in with MNIST's shapes and
  types: (60000, 28, 28) and (10000, 28, 28) uint8 images, uint8 labels 0-9, random from
  a fixed seed, so the same on every rank like the one MNIST file (nothing can be
  downloaded here);
* with $EXAMPLE_FIT="NAME=EPOCHSxSTEPS[,...]", gives the ``fit`` of script NAME that many
  epochs and steps per epoch instead of its own (the MNIST example trains 24 epochs of
  500 steps, minutes of CPU time; its warmup of 3 epochs stays as written);
* puts one callback first in the script's list, recording this rank's own epoch logs
  before Horovod's MetricAverageCallback averages them;
* after ``fit``, writes $OUT_DIR/{SCRIPT NAME}-rank{R}.json: the rank and size, the local and the
  logged (averaged) history with the learning rate per epoch, SHA-256 digests of the
  trainable weights and of all weights, the optimizer's class, and the checkpoint files
  in the working folder.
"""
import hashlib
import json
import os
import runpy
import sys

import numpy as np
import tensorflow as tf

import keras


def mnist_stand_in(path="mnist.npz"):
    rng = np.random.default_rng(2019)
    x_train = rng.integers(0, 256, size=(60000, 28, 28), dtype=np.uint8)
    y_train = rng.integers(0, 10, size=60000, dtype=np.uint8)
    x_test = rng.integers(0, 256, size=(10000, 28, 28), dtype=np.uint8)
    y_test = rng.integers(0, 10, size=10000, dtype=np.uint8)
    return (x_train, y_train), (x_test, y_test)


tf.keras.datasets.mnist.load_data = mnist_stand_in


class RecordLocal(keras.callbacks.Callback):
    """This rank's own epoch logs, taken before any averaging callback runs."""

    def __init__(self):
        super().__init__()
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})


def digest(arrays):
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


_fit = keras.Model.fit


def observed_fit(self, *args, **kwargs):
    sizes = dict(item.split("=") for item in os.environ.get("EXAMPLE_FIT", "").split(",") if item)
    if _CURRENT["script"] in sizes:
        epochs, steps = sizes[_CURRENT["script"]].split("x")
        kwargs["epochs"], kwargs["steps_per_epoch"] = int(epochs), int(steps)
    record = RecordLocal()
    kwargs["callbacks"] = [record] + list(kwargs.get("callbacks") or [])
    history = _fit(self, *args, **kwargs)

    import bwkeras.horovod as hvd

    out = {
        "rank": hvd.rank(),
        "size": hvd.size(),
        "local": record.history,
        "logged": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "trainable_digest": digest(v.numpy() for v in self.trainable_weights),
        "weights_digest": digest(self.get_weights()),
        "optimizer": type(self.optimizer).__name__,
        "iterations": int(np.asarray(self.optimizer.iterations)),
        "checkpoints": sorted(f for f in os.listdir(".") if f.startswith("checkpoint-")),
    }
    name = f"{_CURRENT['script']}-rank{hvd.rank()}.json"
    with open(os.path.join(os.environ["OUT_DIR"], name), "w") as f:
        json.dump(out, f)
    return history


keras.Model.fit = observed_fit
_CURRENT = {"script": None}


def commands(argv):
    """[[script, arg, ...], ...] from `argv` split at each --then."""
    out = [[]]
    for arg in argv:
        if arg == "--then":
            out.append([])
        else:
            out[-1].append(arg)
    return [c for c in out if c]


if __name__ == "__main__":
    for script, *args in commands(sys.argv[1:]):
        _CURRENT["script"] = os.path.splitext(os.path.basename(script))[0]
        sys.argv = [script] + args
        runpy.run_path(script, run_name="__main__")
