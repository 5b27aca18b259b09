"""A small data-parallel training job used by the distributed tests.

Runs unchanged as a plain process or under horovodrun / mpirun. Each rank builds its
model from a DIFFERENT seed (the broadcast must make them agree) and writes what it
ended with to $OUT_DIR/rank{r}.json.

argv: n_samples per_rank_batch epochs compression passes [kill_rank_at_epoch]
"""
import json
import os
import socket
import sys

import numpy as np

import keras
from bwkeras import distributed as dist

n_samples, batch, epochs = (int(a) for a in sys.argv[1:4])
compression = None if sys.argv[4] == "none" else sys.argv[4]
passes = int(sys.argv[5])
kill_at = int(sys.argv[6]) if len(sys.argv) > 6 else None

dist.init()
rank, size = dist.rank(), dist.size()

# The same data on every rank (seed 0); each rank trains on its own shard.
# (drawn as a pool of 1000 and cut, so runs with different n_samples share their samples)
rng = np.random.default_rng(0)
x = rng.normal(size=(1000, 4)).astype("float32")
y = (x @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.1 * rng.normal(size=1000)).astype("float32")[:, None]
x, y = x[:n_samples], y[:n_samples]
x_local, y_local = dist.shard((x, y))

keras.utils.set_random_seed(100 + 7 * rank)
model = keras.Sequential([
    keras.Input(shape=(4,)),
    keras.layers.Dense(8, activation="tanh"),
    keras.layers.Dense(1),
])
initial = [w.copy() for w in model.get_weights()]
# BUCKET_BYTES: the exchange's bucket size ("none": one grouped allreduce); default bwkeras'
bucket = os.environ.get("BUCKET_BYTES")
buckets = {} if bucket is None else {"bucket_bytes": None if bucket == "none" else int(bucket)}
opt = dist.DistributedOptimizer(keras.optimizers.SGD(learning_rate=0.05),
                                compression=compression, backward_passes_per_step=passes, **buckets)
model.compile(optimizer=opt, loss="mse")


class RecordLocal(keras.callbacks.Callback):
    """Runs before the averaging callback: keeps this rank's own epoch losses."""

    def __init__(self):
        super().__init__()
        self.local = []

    def on_epoch_end(self, epoch, logs=None):
        self.local.append(float(logs["loss"]))
        if epoch == 0 and os.environ.get("PID_DIR"):
            # fault tests: which process to stop or whose link to pull, once training runs
            with open(os.path.join(os.environ["PID_DIR"], f"rank{rank}.pid"), "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}")
        if kill_at is not None and epoch + 1 == kill_at and rank == size - 1:
            os.kill(os.getpid(), 9)  # a rank dies mid-training


record = RecordLocal()
history = model.fit(x_local, y_local, batch_size=batch, epochs=epochs, shuffle=False,
                    callbacks=[record] + dist.callbacks(), verbose=0)

with open(os.path.join(os.environ["OUT_DIR"], f"rank{rank}.json"), "w") as f:
    json.dump({
        "rank": rank,
        "size": size,
        "host": socket.gethostname(),
        # how the ranks were wired (bwkeras sets these from the route when the user did not)
        "controller": os.environ.get("HOROVOD_CONTROLLER"),
        "gloo_iface": os.environ.get("HOROVOD_GLOO_IFACE"),
        "btl_tcp_if_include": os.environ.get("OMPI_MCA_btl_tcp_if_include"),
        "n_local": int(len(x_local)),
        "initial": [w.tolist() for w in initial],
        "weights": [w.tolist() for w in model.get_weights()],
        "logged_loss": [float(v) for v in history.history["loss"]],
        "local_loss": record.local,
        "iterations": int(np.asarray(model.optimizer.iterations)),
    }, f)
