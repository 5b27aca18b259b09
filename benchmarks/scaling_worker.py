"""One process of the scaling benchmark: the 784-512-512-10 MLP on synthetic data.

    python benchmarks/scaling_worker.py plain|bwkeras STEPS BATCH OUT_FILE_PREFIX

`plain` is Keras alone (no bwkeras, no Horovod); `bwkeras` wraps the optimizer and adds
the callbacks of bwkeras.distributed (a no-op wrapper in a lone process). Writes
{"rank", "size", "samples_per_s"} of this process, timed over STEPS steps after one
warm-up epoch (tracing), to OUT_FILE_PREFIX + rank + ".json".
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

# BENCH_THREADS=N: N math threads, as a script would set them; unset: the defaults (for
# bwkeras under a launcher, its share of the cores; TensorFlow's own otherwise).
if os.environ.get("BENCH_THREADS"):
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ["BENCH_THREADS"]))
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ["BENCH_THREADS"]))

import keras  # noqa: E402

mode, steps, batch, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]

if mode == "bwkeras":
    from bwkeras import distributed as dist

    dist.init()
    rank, size = dist.rank(), dist.size()
else:
    dist, rank, size = None, 0, 1

rng = np.random.default_rng(rank)
x = rng.random((batch * steps, 784), dtype=np.float32)
y = rng.integers(0, 10, size=batch * steps)
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input(shape=(784,)),
    keras.layers.Dense(512, activation="relu"),
    keras.layers.Dense(512, activation="relu"),
    keras.layers.Dense(10, activation="softmax"),
])
opt = keras.optimizers.SGD(0.01)
callbacks = []
if dist is not None and not os.environ.get("BENCH_NO_ALLREDUCE"):
    opt = dist.DistributedOptimizer(opt)
    callbacks = dist.callbacks()
model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
model.fit(x[: batch * 3], y[: batch * 3], batch_size=batch, epochs=1, verbose=0, callbacks=callbacks)
_sync = os.environ.get("BENCH_SYNC_DIR")
if _sync:  # start every process's timed window together, so that they compete for the cores
    open(os.path.join(_sync, f"{os.getpid()}.ready"), "w").close()
    while len([f for f in os.listdir(_sync) if f.endswith(".ready")]) < int(os.environ["BENCH_SYNC_COUNT"]):
        time.sleep(0.005)
started, cpu_started = time.perf_counter(), time.process_time()
model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=callbacks)
seconds = time.perf_counter() - started
cpu = time.process_time() - cpu_started
with open(f"{prefix}{rank}.json", "w") as f:
    json.dump({"rank": rank, "size": size, "samples_per_s": batch * steps / seconds,
               "cores_busy": cpu / seconds,
               "threads": tf.config.threading.get_intra_op_parallelism_threads()}, f)
