"""The drop-in `bwkeras.horovod` in one plain process (Horovod at size 1), for
tests/test_horovod_dropin.py: names, argument errors, compile, momentum correction, and
(Keras 2) the same schedule run through Horovod's own callbacks. Writes $OUT_DIR/rank0.json.
"""
import json
import os
import tempfile

import numpy as np
import tensorflow as tf

import bwkeras.horovod as hvd
import keras
from bwkeras._keras import KERAS3

out = {}


def error(fn):
    try:
        fn()
    except (ValueError, TypeError) as exc:
        return [type(exc).__name__, str(exc)]
    return None


# Horovod's own rule: nothing before init (and nothing here may start TensorFlow's
# runtime before the tf.config calls below).
out["before_init"] = error(lambda: hvd.DistributedOptimizer("sgd"))
hvd.init()
out["size"], out["initialized"] = hvd.size(), bool(hvd.is_initialized())
try:
    tf.config.set_visible_devices(tf.config.list_physical_devices("CPU"), "CPU")
    tf.config.threading.set_intra_op_parallelism_threads(1)
    out["config_after_init"] = "ok"
except RuntimeError as exc:
    out["config_after_init"] = str(exc)

NAMES = ["init", "shutdown", "is_initialized", "size", "rank", "local_rank", "local_size",
         "cross_rank", "cross_size", "mpi_enabled", "gloo_enabled", "mpi_built", "gloo_built",
         "nccl_built", "cuda_built", "rocm_built", "sycl_built", "Compression", "Average", "Sum",
         "Adasum", "ProcessSet", "global_process_set", "DistributedOptimizer", "allreduce",
         "allgather", "broadcast", "alltoall", "reducescatter", "broadcast_variables",
         "broadcast_object", "allgather_object", "join", "barrier", "load_model", "callbacks"]
CALLBACKS = ["BroadcastGlobalVariablesCallback", "MetricAverageCallback",
             "LearningRateWarmupCallback", "LearningRateScheduleCallback", "BestModelCheckpoint"]
out["missing"] = [n for n in NAMES if not hasattr(hvd, n)] + \
    [f"callbacks.{n}" for n in CALLBACKS if not hasattr(hvd.callbacks, n)]
out["compression"] = [hvd.Compression.none.__name__, hvd.Compression.fp16.__name__]

sgd = keras.optimizers.SGD
out["errors"] = {
    "op": error(lambda: hvd.DistributedOptimizer(sgd(0.1), op=hvd.Adasum)),
    "gradient_predivide_factor": error(
        lambda: hvd.DistributedOptimizer(sgd(0.1), op=hvd.Sum, gradient_predivide_factor=2.0)),
    "compression": error(lambda: hvd.DistributedOptimizer(sgd(0.1), compression="fp16")),
    "backward_passes_per_step": error(lambda: hvd.DistributedOptimizer(sgd(0.1), backward_passes_per_step=0)),
    "groups": error(lambda: hvd.DistributedOptimizer(sgd(0.1), groups=-1)),
    "sparse_as_dense": error(lambda: hvd.DistributedOptimizer(sgd(0.1), sparse_as_dense="yes")),
    "optimizer": error(lambda: hvd.DistributedOptimizer("sgd")),
    "initial_lr": error(lambda: hvd.callbacks.LearningRateScheduleCallback(None, 0.5)),
    "local_variables": error(lambda: hvd.callbacks.BroadcastGlobalVariablesCallback(0, local_variables=[1.0])),
}

# compile: experimental_run_tf_function is accepted (and means nothing) on both Keras;
# any other unknown keyword still fails as Keras says.
model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
model.compile(optimizer=hvd.DistributedOptimizer(sgd(0.1)), loss="mse",
              experimental_run_tf_function=False)
out["compile_bogus"] = error(lambda: model.compile(optimizer="sgd", loss="mse", bogus_keyword=1))
variables = model.optimizer.variables
out["variables_callable"] = callable(variables)
model.fit(np.ones((4, 2)), np.ones((4, 1)), verbose=0)
out["variable_count"] = len(variables() if callable(variables) else variables)

# ---- momentum correction, against the rule written out in numpy by the test ------------
# One weight, loss = mean(prediction) on inputs of ones: every gradient is exactly 1.


def schedule_callbacks(cb):
    return [cb.LearningRateScheduleCallback(initial_lr=0.1, multiplier=lambda e: 0.5 + e / 4,
                                            start_epoch=0, end_epoch=2, staircase=False),
            cb.LearningRateScheduleCallback(initial_lr=0.1, multiplier=0.1, start_epoch=2,
                                            end_epoch=3)]


def run_schedule(optimizer, cb_module, wrap=hvd.DistributedOptimizer):
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(np.asarray(self.model.optimizer.learning_rate)))

    m = keras.Sequential([keras.Input(shape=(1,)),
                          keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    m.compile(optimizer=wrap(optimizer), loss=lambda y, p: tf.reduce_mean(p))
    m.fit(np.ones((12, 1), "float32"), np.zeros((12, 1), "float32"), batch_size=4, epochs=4,
          shuffle=False, verbose=0, callbacks=schedule_callbacks(cb_module) + [Spy()])
    return {"lr": seen, "w": float(m.get_weights()[0].ravel()[0])}


out["momentum"] = {"sgd": run_schedule(sgd(0.1, momentum=0.9), hvd.callbacks),
                   "rmsprop": run_schedule(keras.optimizers.RMSprop(0.1, momentum=0.9), hvd.callbacks)}
if KERAS3:
    out["momentum"]["nesterov"] = run_schedule(sgd(0.1, momentum=0.9, nesterov=True), hvd.callbacks)
else:
    import horovod.tensorflow.keras as horovod_keras  # Keras 2: Horovod's own layer works

    legacy = keras.optimizers.legacy.SGD
    out["momentum"]["nesterov"] = run_schedule(legacy(0.1, momentum=0.9, nesterov=True), hvd.callbacks)
    out["momentum"]["nesterov_current"] = run_schedule(sgd(0.1, momentum=0.9, nesterov=True),
                                                       hvd.callbacks)
    # The same schedule through Horovod's own callbacks and wrapper: the reference.
    out["momentum"]["horovod_own"] = run_schedule(legacy(0.1, momentum=0.9), horovod_keras.callbacks,
                                                  wrap=horovod_keras.DistributedOptimizer)
    out["momentum"]["legacy_ours"] = run_schedule(legacy(0.1, momentum=0.9), hvd.callbacks)

# ---- BestModelCheckpoint: filepath set after construction, as Horovod's estimators do --
folder = tempfile.mkdtemp()
best = hvd.callbacks.BestModelCheckpoint(monitor="val_loss", save_weights_only=True)
out["best_unset"] = error(lambda: best.on_train_begin())
best.filepath = os.path.join(folder, "best.weights.h5" if KERAS3 else "best.h5")
model.fit(np.ones((4, 2)), np.ones((4, 1)), validation_data=(np.ones((2, 2)), np.ones((2, 1))),
          epochs=2, verbose=0, callbacks=[best])
out["best_written"] = os.path.exists(best.filepath)

with open(os.path.join(os.environ["OUT_DIR"], "rank0.json"), "w") as f:
    json.dump(out, f)
