"""Horovod's OWN Keras layer (horovod.tensorflow.keras) in a process that imported bwkeras,
for tests/test_horovod_dropin.py.

argv: ORDER MODE
  ORDER  bwkeras-first | horovod-first   which of the two is imported first
  MODE   record: try each use, write $OUT_DIR/rank{r}.json with what happened
         raise:  just train with Horovod's wrapper and callbacks (the job must fail)
"""
import json
import os
import sys

order, mode = sys.argv[1], sys.argv[2]
if order == "bwkeras-first":
    import bwkeras  # noqa: F401
    import horovod.tensorflow.keras as hvd
else:
    import horovod.tensorflow.keras as hvd
    import bwkeras  # noqa: F401

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras  # noqa: E402

hvd.init()
x = np.random.default_rng(hvd.rank()).random((16, 3)).astype("float32")
y = x[:, :1]


def model():
    m = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(1)])
    return m


def with_horovod_optimizer():
    m = model()
    m.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.SGD(0.1)), loss="mse")
    m.fit(x, y, batch_size=4, epochs=1, verbose=0)


def with_horovod_callbacks():
    m = model()
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    m.fit(x, y, batch_size=4, epochs=1, verbose=0,
          callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0),
                     hvd.callbacks.MetricAverageCallback()])


def in_a_custom_loop():
    m = model()
    opt = hvd.DistributedOptimizer(keras.optimizers.SGD(0.1))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean((m(x) - y) ** 2)
    opt.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))


if mode == "raise":
    m = model()
    m.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.SGD(0.1)), loss="mse")
    m.fit(x, y, batch_size=4, epochs=2, verbose=0,
          callbacks=[hvd.callbacks.MetricAverageCallback()])
    raise SystemExit("trained without the guard firing")

out = {}
for name, fn in [("optimizer", with_horovod_optimizer), ("callbacks", with_horovod_callbacks),
                 ("custom_loop", in_a_custom_loop)]:
    try:
        fn()
        out[name] = None
    except Exception as exc:  # noqa: BLE001  (recorded for the test to judge)
        out[name] = [type(exc).__name__, str(exc)]
with open(os.path.join(os.environ["OUT_DIR"], f"rank{hvd.rank()}.json"), "w") as f:
    json.dump(out, f)
