"""Peak memory of one rank holding a layer too wide for a budget, used by
tests/test_model_parallel_training.py.

An MLP 4096 -> 16384 -> 8 (a 256 MiB kernel, then a small head; large enough that the
allocator's run-to-run spread of some 70 MB stays small beside it) trains 3 SGD steps;
the process reports its peak resident memory above what it held before building the
model. The kernel's high-water mark (VmHWM) is reset just before, so neither TensorFlow's
start-up nor the warm-up's own peak hides part of the model's (a ru_maxrss delta did: it
under-counted by whatever the warm-up had held and freed, 650-1100 MB run to run).
argv: k
"""
import json
import os
import re
import sys

import numpy as np

from bwkeras import distributed as dist
from bwkeras import models


def status_bytes(field):
    with open("/proc/self/status") as f:
        return int(re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.M).group(1)) * 1024


k = int(sys.argv[1])
dist.init_model_parallel(k)
import keras  # noqa: E402

x = np.random.default_rng(0).normal(size=(64, 4096)).astype("float32")
y = np.zeros((64, 8), "float32")
warm = models.MLP(hidden_units=(16,), output="linear", n_outputs=8, model_parallel=k)
warm.compile(optimizer="sgd", loss="mse")
warm.fit(x, y, batch_size=32, epochs=1, verbose=0)  # TensorFlow's kernels, tracing: paid
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets VmHWM to the current resident size
before = status_bytes("VmRSS")
model = models.MLP(hidden_units=(16384,), output="linear", n_outputs=8, model_parallel=k)
model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
model.fit(x, y, batch_size=32, epochs=1, verbose=0)
after = status_bytes("VmHWM")
params = int(sum(np.prod(w.shape) for w in model.weights))
with open(os.path.join(os.environ["OUT_DIR"], f"rank{dist.rank()}.json"), "w") as f:
    json.dump({"rank": dist.rank(), "k": k, "peak_bytes": after - before,
               "param_bytes": params * 4}, f)
# No rank leaves while another still runs a collective: an exiting rank shuts Horovod
# down for the whole job (the model groups of a 2-D job finish at different moments).
dist.barrier()
