"""Regression solves and training under a real launcher (horovodrun -np 2 --gloo).

One job covers several things, since each launch costs seconds: every rank passes its own
shard and must get the same FitResult, equal to one process on all the data (LRE >= 10),
for a streamed QR solve, a Levenberg-Marquardt solve (one input, unbounded and with a bound
that binds; two inputs with weights in streamed batches) and a maximum-likelihood logistic solve; GD, SGD and mini-batch SGD train through `fit` with Horovod; and a bad shard on one
rank makes every rank raise instead of hanging.
"""
import numpy as np
import pytest

from launch import check, read_outputs, run_script

pytestmark = pytest.mark.launcher

SCRIPT = r'''
import json, os, warnings
import numpy as np
from bwkeras import distributed as dist
dist.init()  # Horovod: init
import keras
import tensorflow as tf
from bwkeras.regression import (LinearRegression, LogisticRegression, ParametricRegression,
                                PolynomialRegression, gap_to_optimum)
from bwkeras.data import synthetic

rank, size = dist.rank(), dist.size()
out = {"rank": rank, "size": size}

def pair(make, x, y, **kw):
    """Distributed solve on this rank's shard vs one process on the union of the shards."""
    xs, ys = dist.shard((x, y))
    used = len(xs) * size  # strided shards cover the first `used` rows
    dist_res = make().solve(*kw.pop("wrap")(xs, ys), **kw) if "wrap" in kw else make().solve(xs, ys, **kw)
    one = make().solve(x[:used], y[:used], distributed=False, **kw)
    return {"dist": dist_res.to_dict(), "one": one.to_dict(), "n_local": len(ys)}

# Streamed QR: tf.data batches of 97 rows of a noisy cubic.
x, y, _ = synthetic.polynomial(2001, coefficients=[1.0, -2.0, 0.5, 0.1], noise=0.3, seed=1)
def as_dataset(xs, ys):
    return (tf.data.Dataset.from_tensor_slices((xs, ys)).batch(97),)
out["poly"] = pair(lambda: PolynomialRegression(3, dtype="float64"), x, y, wrap=as_dataset)

# Levenberg-Marquardt on a Misra1a-shaped curve.
x, y, _ = synthetic.parametric("b1*(1-exp(-b2*x))", {"b1": 240.0, "b2": 5.5e-4}, n=300,
                               noise=0.1, x_range=(70.0, 800.0), seed=2)
out["lm"] = pair(lambda: ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 500.0, "b2": 1e-4},
                                              dtype="float64"), x, y, batch_size=64)

# The same with a bound that binds (the curve's b1 is 240): projected steps on every rank.
out["lmb"] = pair(lambda: ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 150.0, "b2": 1e-4},
                                               dtype="float64"), x, y, batch_size=64,
                  bounds={"b1": (None, 200.0)})

# Two inputs and sample weights, streamed as (x, y, w) batches on each rank.
rng = np.random.default_rng(6)
x2 = np.column_stack([rng.uniform(1.0, 60.0, 400), rng.uniform(150.0, 300.0, 400)])
w2 = rng.uniform(0.5, 2.0, 400)
y2 = 2.5 - 0.5 * x2[:, 0] * np.exp(-0.01 * x2[:, 1]) + rng.normal(0.0, 0.05, 400) / np.sqrt(w2)
used = (len(y2) // size) * size
mine = np.arange(rank, used, size)
def two_inputs():
    return ParametricRegression("b1 - b2*x1*exp(-b3*x2)", {"b1": 2.0, "b2": 0.1, "b3": 0.02},
                                inputs=("x1", "x2"), dtype="float64")
batches = [(x2[mine][i:i + 50], y2[mine][i:i + 50], w2[mine][i:i + 50]) for i in range(0, len(mine), 50)]
out["lm2w"] = {"dist": two_inputs().solve(batches).to_dict(),
               "one": two_inputs().solve(x2[:used], y2[:used], sample_weight=w2[:used],
                                         distributed=False).to_dict(),
               "n_local": len(mine)}

# Maximum-likelihood logistic regression (Fisher scoring).
x, y, _ = synthetic.logistic(600, a=-0.5, b=[1.0, -2.0], outcome="bernoulli", seed=3)
out["logit"] = pair(lambda: LogisticRegression(2, loss="binary_crossentropy", dtype="float64"), x, y)

# Training through fit: full-batch GD, SGD (batch 1, shuffled), mini-batch SGD.
x, y, truth = synthetic.linear(64, m=1.5, b=-0.5, noise=0.05, seed=4)
xs, ys = dist.shard((x, y))
opt_ref = LinearRegression(dtype="float64").solve(x, y, distributed=False)
out["fit"] = {}
for label, batch, epochs, lr in [("gd", 32, 60, 0.3), ("sgd", 1, 4, 0.2), ("minibatch", 8, 15, 0.3)]:
    keras.utils.set_random_seed(10 + rank)  # different initial state per rank on purpose
    model = LinearRegression()
    model.set_params(np.random.default_rng(rank).normal(size=2))
    steps = epochs * -(-len(xs) // batch)
    # SGD's noise floor scales with the step: decay it to 0 over the run (cosine).
    schedule = keras.optimizers.schedules.CosineDecay(lr, steps) if batch < 32 else lr
    opt = dist.DistributedOptimizer(keras.optimizers.SGD(schedule))  # Horovod: wrap optimizer
    model.compile(optimizer=opt, loss="mse")
    model.fit(xs, ys, batch_size=batch, epochs=epochs, shuffle=True,
              callbacks=dist.callbacks(), verbose=dist.fit_verbosity(0))  # Horovod: broadcast
    gap = gap_to_optimum(model, x, y, optimum=opt_ref, distributed=False)
    out["fit"][label] = {"params": model.params.tolist(), "ratio": gap.ratio}

# Error agreement: a NaN only in rank 1's shard must fail every rank, not hang rank 0.
x, y, _ = synthetic.linear(40, seed=5)
xs, ys = dist.shard((x, y))
if rank == 1:
    ys = ys.copy(); ys[3] = np.nan
try:
    LinearRegression().solve(xs, ys)
    out["error"] = None
except ValueError as exc:
    out["error"] = str(exc)

with open(os.path.join(os.environ["OUT_DIR"], f"rank{rank}.json"), "w") as fh:
    json.dump(out, fh)
'''


def lre(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    err = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
    with np.errstate(divide="ignore"):
        return -np.log10(err)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("regression_np2")
    proc = check(run_script(tmp, SCRIPT, np=2, timeout=240))
    return read_outputs(proc, 2)


@pytest.mark.parametrize("problem", ["poly", "lm", "lmb", "lm2w", "logit"])
def test_every_rank_gets_the_one_process_result(ranks, problem):
    r0, r1 = ranks[0][problem], ranks[1][problem]
    assert ranks[0]["size"] == 2 and r0["n_local"] == r1["n_local"] > 0
    # Same FitResult on both ranks, bit for bit (rank 0's result is broadcast).
    assert r0["dist"] == r1["dist"]
    dist_res, one = r0["dist"], r0["one"]
    assert dist_res["n_obs"] == one["n_obs"] == 2 * r0["n_local"]
    assert dist_res["converged"] and one["converged"]
    names = list(one["params"])
    assert dist_res["active_bounds"] == one["active_bounds"] == ({"b1": "upper"} if problem == "lmb" else {})
    # The bar: LRE >= 10 against one process on all the data. Both are float64
    # orthogonal factorisations of the same rows in another order, so they agree to
    # ~1e-13 relative times a condition number well under 1e3 for these problems.
    for key in ("params", "std_errors"):
        # a parameter held on its bound has no standard error (NaN on both sides)
        keep = [k for k in names if key == "params" or k not in one["active_bounds"]]
        assert all(np.isnan(dist_res[key][k]) for k in names if k not in keep)
        got = [dist_res[key][k] for k in keep]
        ref = [one[key][k] for k in keep]
        assert lre(got, ref).min() >= 10, (key, got, ref)
    for key in ("rss", "r_squared", "residual_sd"):
        assert lre(dist_res[key], one[key]) >= 10, (key, dist_res[key], one[key])


def test_gradient_methods_train_under_horovod(ranks):
    for label in ("gd", "sgd", "minibatch"):
        p0, p1 = ranks[0]["fit"][label], ranks[1]["fit"][label]
        # Broadcast initial state + averaged gradients: both ranks hold the same model
        # even though they started from different random parameters.
        np.testing.assert_array_equal(p0["params"], p1["params"])
        # And the model got close to the exact optimum of all the data: R within 5%.
        # (R_opt ~ 64 * 0.05^2; float32 training and a handful of epochs leave a small
        # excess, and a model that did not train would be off by a factor > 100.)
        assert 1.0 - 1e-6 <= p0["ratio"] < 1.05, (label, p0["ratio"])


def test_bad_shard_on_one_rank_fails_every_rank(ranks):
    assert "NaN" in ranks[1]["error"] and "row 3" in ranks[1]["error"]
    assert ranks[0]["error"] is not None and "rank 1" in ranks[0]["error"]
