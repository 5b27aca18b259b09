"""Whole-model files of sharded models, used by tests/test_model_parallel_files.py.

argv: save DIR   every rank builds a sharded MLP and LSTM forecaster (k = all ranks, seeded
                 by rank, then synced: each shard its own, replicated weights rank 0's), saves them to
                 DIR/{mlp,lstm}.keras and DIR/mlp.weights.h5, and records its predictions
      load DIR   every rank loads DIR/plain-{mlp,lstm}.keras (written by one process) into
                 a sharded model with load_weights and records its predictions and shards
Each rank writes $OUT_DIR/rank{r}.json.
"""
import json
import os
import sys

import numpy as np

import keras
from bwkeras import distributed as dist
from bwkeras import models

mode, folder = sys.argv[1], sys.argv[2]
dist.init_model_parallel(2)
rank = dist.rank()
x_mlp = np.random.default_rng(0).normal(size=(6, 5)).astype("float32")
x_seq = np.random.default_rng(1).normal(size=(6, 7, 2)).astype("float32")
made = {
    "mlp": (lambda: models.MLP(hidden_units=(8, 6, 4), output="linear", n_outputs=2,
                               model_parallel=2), x_mlp),
    "lstm": (lambda: models.RecurrentForecaster(cell="lstm", units=8, layers=2, horizon=3,
                                                model_parallel=2), x_seq),
}
out = {"rank": rank}
for name, (make, x) in made.items():
    keras.utils.set_random_seed(10 + rank)
    model = make()
    model(x[:1])
    dist.broadcast_model(model)  # one model: replicated weights agree, shards stay apart
    if mode == "save":
        model.save(os.path.join(folder, f"{name}.keras"))
        if name == "mlp":
            model.save_weights(os.path.join(folder, f"{name}.weights.h5"))
        # every rank returns only once the file is there
        out[f"{name}_exists"] = os.path.exists(os.path.join(folder, f"{name}.keras"))
    else:
        model.load_weights(os.path.join(folder, f"plain-{name}.keras"))
        out[f"{name}_first_kernel"] = np.asarray(model.weights[0]).tolist()
    out[name] = np.asarray(model.predict(x, verbose=0)).tolist()

with open(os.path.join(os.environ["OUT_DIR"], f"rank{rank}.json"), "w") as f:
    json.dump(out, f)
# No rank leaves while another still runs a collective: an exiting rank shuts Horovod
# down for the whole job (the model groups of a 2-D job finish at different moments).
dist.barrier()
