"""A tensor-parallel model against the same model in one process, used by
tests/test_model_parallel_training.py.

Runs as a plain process (k = 1: the reference) or under a launcher with N = d x k ranks.
Every process builds the plain model (model_parallel=1) from seed 0 and gives its full
weights to the model under test, so all start from the same whole model. It records,
gathered to whole-model arrays: the forward output and the gradients of one batch, then
the weights after `epochs` of SGD with bwkeras' DistributedOptimizer and callbacks, the
copies that rank 0's broadcast must repair starting from perturbed weights.
Each rank writes $OUT_DIR/rank{r}.json.

argv: model k per_replica_batch epochs   (model: mlp, lstm, gru, simple)
"""
import json
import os
import sys

import numpy as np

import keras
import tensorflow as tf
from bwkeras import distributed as dist
from bwkeras import models
from bwkeras.distributed import model_parallel as mp
from bwkeras.parallel import full_weights, weight_specs

kind, k, batch, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
layout = dist.init_model_parallel(k)
rank = dist.rank()

rng = np.random.default_rng(0)
if kind == "mlp":
    x = rng.normal(size=(32, 5)).astype("float32")
    y = np.stack([np.sin(x.sum(1)), x[:, 0] * x[:, 1]], axis=1).astype("float32")

    def make(parallel):
        return models.MLP(hidden_units=(8, 6, 4), activation="relu", output="linear",
                          n_outputs=2, model_parallel=parallel)
else:
    x = rng.normal(size=(32, 6, 2)).astype("float32")
    y = np.stack([x[:, :, 0].sum(1), x[:, -1, 1]], axis=1).astype("float32")

    def make(parallel):
        return models.RecurrentForecaster(cell=kind, units=8, layers=2, horizon=2,
                                          model_parallel=parallel)

keras.utils.set_random_seed(0)
plain = make(1)
plain(x[:1])
initial = [w.numpy() for w in plain.weights]

model = make(k)
model(x[:1])
model.set_full_weights(initial)
local_params = int(sum(np.prod(w.shape) for w in model.weights))
sharded_local = int(sum(np.prod(w.shape) for w, s in zip(model.weights, weight_specs(model))
                        if s is not None))

# Forward output and gradients of one batch of 8 (every rank of a model group sees it).
xb, yb = tf.constant(x[:8]), tf.constant(y[:8])
with tf.GradientTape() as tape:
    out = model(xb)
    loss = tf.reduce_mean(tf.square(out - yb))
grads = tape.gradient(loss, model.trainable_weights)
full_grads = []
for i, (g, spec) in enumerate(zip(grads, weight_specs(model))):
    g = g.numpy()
    if spec is not None:
        g = mp.gather_shards(g, spec[0], spec[2], spec[1], name=f"test.grad.{i}")
    full_grads.append(g)

# Every copy the broadcast must repair starts elsewhere: a replica other than the first
# (whole model), a rank other than its group's first (replicated weights). The shards of
# the first replica are the only copies of themselves and stay.
specs = weight_specs(model)
moved = [w * (1.0 + 0.1 * rank) + 0.01
         if layout.data_index > 0 or (layout.shard > 0 and spec is None) else w
         for w, spec in zip(initial, specs)]
model.set_full_weights(moved)
model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.SGD(0.1)), loss="mse")
x_local, y_local = dist.shard((x, y))
model.fit(x_local, y_local, batch_size=batch, epochs=epochs, shuffle=False,
          callbacks=dist.callbacks(), verbose=0)
trained = full_weights(model)

with open(os.path.join(os.environ["OUT_DIR"], f"rank{rank}.json"), "w") as f:
    json.dump({
        "rank": rank, "size": dist.size(), "k": layout.k, "d": layout.d,
        "shard": layout.shard, "n_local": int(len(x_local)),
        "output": out.numpy().tolist(),
        "grads": [g.tolist() for g in full_grads],
        "initial": [w.tolist() for w in initial],
        "weights": [w.tolist() for w in trained],
        "local_params": local_params, "sharded_local_params": sharded_local,
        "full_params": int(sum(np.prod(w.shape) for w in initial)),
        "iterations": int(np.asarray(model.optimizer.iterations)),
    }, f)
# No rank leaves while another still runs a collective: an exiting rank shuts Horovod
# down for the whole job (the model groups of a 2-D job finish at different moments).
dist.barrier()
