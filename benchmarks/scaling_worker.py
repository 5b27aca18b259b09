"""One process of the scaling benchmark: an MLP or an LSTM forecaster on synthetic data.

    python benchmarks/scaling_worker.py MODE MODEL STEPS BATCH OUT_PREFIX

MODE, the way the training is written:
  plain    Keras alone, no bwkeras, no Horovod: the baseline;
  bwkeras  bwkeras.models + bwkeras.distributed (optimizer wrapper and callbacks);
  stock    Horovod's own Keras example (horovod.tensorflow.keras; Keras 2 stack only);
  mwms     tf.distribute.MultiWorkerMirroredStrategy (TF_CONFIG set by the runner).
MODEL: mlp (784-512-512-10, 2.7 MB of gradients), lstm (window 32, 64 units, 17k weights)
or cnn (four 3x3 convolutions and two dense layers on 32x32x3 synthetic images, 10
classes, 1.9 MB of gradients: benchmarks/synthetic_bench.py).
BATCH is per process. The timed window is one `fit` of STEPS steps after a warm-up `fit`
(tracing, first collectives); with BENCH_SYNC_DIR / BENCH_SYNC_COUNT set, every process
starts its window together, so the processes really compete for the cores.
BENCH_THREADS=N sets N TensorFlow threads as a script would; unset leaves the defaults.
BENCH_COMPRESSION=fp16 and BENCH_PASSES=k (bwkeras mode): fp16 gradients on the wire, and
one exchange per k batches (gradient accumulation); BENCH_BUCKET=BYTES or none: the
exchange's bucket size (none: one grouped allreduce after backprop).
Writes {"samples_per_s", "cores_busy", "threads", ...} to OUT_PREFIX<rank>.json.
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if os.environ.get("BENCH_THREADS"):
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["BENCH_THREADS"]))
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["BENCH_THREADS"]))

import keras  # noqa: E402

WINDOW, UNITS = 32, 64


def plain_model(name):
    if name == "mlp":
        return keras.Sequential([
            keras.Input(shape=(784,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ])
    if name == "cnn":
        conv = [keras.layers.Conv2D(f, 3, activation="relu") for f in (32, 32, 64, 64)]
        return keras.Sequential([
            keras.Input(shape=(32, 32, 3)), conv[0], conv[1], keras.layers.MaxPooling2D(),
            conv[2], conv[3], keras.layers.MaxPooling2D(), keras.layers.Flatten(),
            keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10, activation="softmax"),
        ])
    return keras.Sequential([keras.Input(shape=(WINDOW, 1)), keras.layers.LSTM(UNITS), keras.layers.Dense(1)])


def bwkeras_model(name):
    from bwkeras.models import MLP, RecurrentForecaster

    if name == "cnn":  # no CNN family in bwkeras: the Keras model, bwkeras' distribution
        return plain_model(name)
    if name == "mlp":
        return MLP(hidden_units=(512, 512), activation="relu", output="softmax", n_outputs=10)
    return RecurrentForecaster(cell="lstm", units=UNITS)


def data(name, rows, seed):
    rng = np.random.default_rng(seed)
    if name == "mlp":
        return rng.random((rows, 784), dtype=np.float32), rng.integers(0, 10, size=rows)
    if name == "cnn":
        return rng.random((rows, 32, 32, 3), dtype=np.float32), rng.integers(0, 10, size=rows)
    return rng.random((rows, WINDOW, 1), dtype=np.float32), rng.random((rows, 1), dtype=np.float32)


def loss(name):
    return "mse" if name == "lstm" else "sparse_categorical_crossentropy"


def wait_for_peers():
    sync = os.environ.get("BENCH_SYNC_DIR")
    if not sync:
        return
    open(os.path.join(sync, f"{os.getpid()}.ready"), "w").close()
    while len([f for f in os.listdir(sync) if f.endswith(".ready")]) < int(os.environ["BENCH_SYNC_COUNT"]):
        time.sleep(0.005)


def main(mode, name, steps, batch, prefix):
    callbacks, scope = [], None
    if mode == "mwms":  # before any other TF call: collectives are configured at startup
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    opt = keras.optimizers.SGD(0.01)
    if mode == "plain":
        rank, size, model = 0, 1, plain_model(name)
    elif mode == "bwkeras":
        from bwkeras import distributed as dist

        rank, size = dist.rank(), dist.size()
        model = bwkeras_model(name)
        bucket = os.environ.get("BENCH_BUCKET")
        buckets = {} if not bucket else {"bucket_bytes": None if bucket == "none" else int(bucket)}
        opt = dist.DistributedOptimizer(opt, compression=os.environ.get("BENCH_COMPRESSION") or None,
                                        backward_passes_per_step=int(os.environ.get("BENCH_PASSES", "1")),
                                        **buckets)
        callbacks = dist.callbacks()
    elif mode == "stock":
        # The peer: Horovod's examples/tensorflow2/tensorflow2_keras_mnist.py, as users write it.
        import horovod.tensorflow.keras as hvd

        hvd.init()
        rank, size, model = hvd.rank(), hvd.size(), plain_model(name)
        opt = hvd.DistributedOptimizer(opt)
        callbacks = [hvd.callbacks.BroadcastGlobalVariablesCallback(0), hvd.callbacks.MetricAverageCallback()]
    elif mode == "mwms":
        rank = json.loads(os.environ.get("TF_CONFIG", '{"task": {"index": 0}}'))["task"]["index"]
        size, scope = strategy.num_replicas_in_sync, strategy.scope()
    else:
        raise SystemExit(f"unknown mode {mode!r}: expected plain, bwkeras, stock or mwms")

    if scope is not None:  # MWMS: the batch given to fit is the global one, split over workers
        with scope:
            model = plain_model(name)
            model.compile(optimizer=opt, loss=loss(name))
        x, y = data(name, batch * size * steps, seed=0)
        fit_batch = batch * size
    else:
        model.compile(optimizer=opt, loss=loss(name))
        x, y = data(name, batch * steps, seed=rank)
        fit_batch = batch
    model.fit(x[: fit_batch * 3], y[: fit_batch * 3], batch_size=fit_batch, epochs=1, verbose=0,
              callbacks=callbacks)
    wait_for_peers()
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=fit_batch, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    with open(f"{prefix}{rank}.json", "w") as f:
        json.dump({"rank": rank, "size": size, "samples_per_s": batch * steps / seconds,
                   "step_ms": 1000 * seconds / steps, "cores_busy": cpu / seconds,
                   "threads": tf.config.threading.get_intra_op_parallelism_threads()
                   or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or None}, f)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
