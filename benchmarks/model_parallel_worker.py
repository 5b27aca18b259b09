"""One process of benchmarks/model_parallel_bench.py: the MLP 784-WIDTH-10 trained for
STEPS steps of BATCH samples per replica with model_parallel=K; rank 0 writes
samples/s, and every rank its peak memory and parameters, to $OUT_DIR/rank{r}.json.

argv: k width batch steps
"""
import json
import os
import resource
import sys
import time

import numpy as np

from bwkeras import distributed as dist
from bwkeras import models

k, width, batch, steps = (int(a) for a in sys.argv[1:5])
layout = dist.init_model_parallel(k)
import keras  # noqa: E402

rng = np.random.default_rng(dist.rank())
x = rng.normal(size=(batch * (steps + 2), 784)).astype("float32")
y = rng.integers(0, 10, size=len(x))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
model = models.MLP(hidden_units=(width,), activation="relu", n_outputs=10, model_parallel=k)
model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.SGD(0.01)),
              loss="sparse_categorical_crossentropy")
model.fit(x[:2 * batch], y[:2 * batch], batch_size=batch, epochs=1, verbose=0,
          callbacks=dist.callbacks())                       # trace, broadcast: not timed
dist.barrier()
start = time.perf_counter()
model.fit(x[2 * batch:], y[2 * batch:], batch_size=batch, epochs=1, verbose=0)
dist.barrier()
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
with open(os.path.join(os.environ["OUT_DIR"], f"rank{dist.rank()}.json"), "w") as f:
    json.dump({"rank": dist.rank(), "k": k, "d": layout.d, "seconds": seconds,
               "samples_per_s": steps * batch * layout.d / seconds,
               "peak_bytes": peak,
               "params": int(sum(np.prod(w.shape) for w in model.weights))}, f)
# No rank leaves while another still runs a collective: an exiting rank shuts Horovod
# down for the whole job (the model groups of a 2-D job finish at different moments).
dist.barrier()
