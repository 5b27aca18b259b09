"""One rank of the commit-overhead benchmark (benchmarks/commit_bench.py).

    horovodrun -np 2 --gloo python benchmarks/commit_worker.py STEPS BATCH K PAIRS OUT_PREFIX

The scaling benchmark's MLP (784-512-512-10) with bwkeras' optimizer wrapper and callbacks,
plus the stop check of `train.commit_steps` (StopOnSignal with every_steps=K). Each pair is
one timed `fit` of STEPS steps with the check every K steps and one without, in
alternating order, then one with the elastic commit instead (`elastic.CommitState` of a
`KerasState`: weights and optimizer variables copied to host memory every K steps); the
time spent inside the check and the commit is also clocked directly. Writes
{"with_s", "without_s", "check_s", "checks", "elastic_s", "commit_s"} (lists) to
OUT_PREFIX<rank>.json.
"""
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import keras  # noqa: E402
from bwkeras import distributed as dist  # noqa: E402
from bwkeras.distributed import elastic  # noqa: E402


class ClockedStop(dist.StopOnSignal):
    """StopOnSignal that adds up the time its per-step check takes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.spent = 0.0
        self.checks = 0

    def on_train_batch_end(self, batch, logs=None):
        started = time.perf_counter()
        super().on_train_batch_end(batch, logs)
        steps = (self.params or {}).get("steps") or 0
        if self.every_steps and (batch + 1) % self.every_steps == 0 and batch + 1 < steps:
            self.checks += 1  # the steps whose check ran an allreduce
        self.spent += time.perf_counter() - started


class ClockedCommit(elastic.CommitState):
    """CommitState that adds up the time its commits take."""

    spent = 0.0

    def on_train_batch_end(self, batch, logs=None):
        started = time.perf_counter()
        super().on_train_batch_end(batch, logs)
        self.spent += time.perf_counter() - started


def main(steps, batch, k, pairs, prefix):
    dist.init()
    rank = dist.rank()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(784,)), keras.layers.Dense(512, activation="relu"),
                              keras.layers.Dense(512, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=dist.DistributedOptimizer(keras.optimizers.SGD(0.01)),
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(rank)
    x = rng.random((batch * steps, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=batch * steps)
    base = dist.callbacks()
    model.fit(x[: batch * 3], y[: batch * 3], batch_size=batch, epochs=1, verbose=0, callbacks=base)
    out = {"with_s": [], "without_s": [], "check_s": [], "checks": [], "elastic_s": [], "commit_s": []}
    state = dist.KerasState(model)
    for i in range(pairs):
        for every in ((k, None) if i % 2 == 0 else (None, k)):
            stop = ClockedStop(every_steps=every)
            dist.barrier(name=f"bench.commit.{i}.{every}")  # both ranks start together
            started = time.perf_counter()
            model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
                      callbacks=base + [stop])
            seconds = time.perf_counter() - started
            out["with_s" if every else "without_s"].append(seconds)
            if every:
                out["check_s"].append(stop.spent)
                out["checks"].append(stop.checks)
        commit = ClockedCommit(state, k)
        dist.barrier(name=f"bench.commit.{i}.elastic")
        started = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
                  callbacks=base + [ClockedStop(every_steps=None), commit])
        out["elastic_s"].append(time.perf_counter() - started)
        out["commit_s"].append(commit.spent)
    with open(f"{prefix}{rank}.json", "w") as fh:
        json.dump(out, fh)


if __name__ == "__main__":
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    main(*(int(a) for a in sys.argv[1:5]), sys.argv[5])
