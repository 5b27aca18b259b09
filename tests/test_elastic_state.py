"""KerasState: commit / restore / sync of a compiled Keras model's weights, optimizer
variables and values, on Keras 3 (where Horovod's own TensorFlowKerasState fails) and
Keras 2; in one process, where sync keeps the committed state."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras
from bwkeras import distributed as dist
from bwkeras._keras import KERAS3


def compiled():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3)])
    model.compile(optimizer=keras.optimizers.Adam(0.1), loss="mse")
    return model


def values(variables):
    return [np.array(v.numpy() if hasattr(v, "numpy") else v) for v in variables]


def train(model, steps=2):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8 * steps, 4)), rng.normal(size=(8 * steps, 3))
    model.fit(x.astype("float32"), y.astype("float32"), batch_size=8, epochs=1, verbose=0,
              shuffle=False)


def test_restore_returns_to_the_last_commit_weights_optimizer_and_values():
    model = compiled()
    state = dist.KerasState(model, epoch=0, batch=0, seen=0)
    # Adam's moments and its step count are in the state, not only the weights
    assert len(state.variables()) > len(model.variables)
    train(model)
    state.epoch, state.batch, state.seen = 1, 2, 16
    state.commit()
    committed = values(state.variables())
    assert int(np.asarray(model.optimizer.iterations)) == 2
    train(model, steps=3)                     # uncommitted progress, then a peer fails
    state.epoch, state.seen = 5, 99
    assert any(not np.array_equal(a, b) for a, b in zip(committed, values(state.variables())))
    state.restore()
    for a, b in zip(committed, values(state.variables())):
        np.testing.assert_array_equal(a, b)
    assert int(np.asarray(model.optimizer.iterations)) == 2
    assert (state.epoch, state.batch, state.seen) == (1, 2, 16)


def test_sync_in_one_process_keeps_the_state_and_commits_it():
    model = compiled()
    state = dist.KerasState(model, step_log=[])
    train(model)
    before = values(state.variables())
    state.sync()                               # rank 0's state: this one
    train(model)
    state.restore()                            # sync committed what it broadcast
    for a, b in zip(before, values(state.variables())):
        np.testing.assert_array_equal(a, b)
    assert state.step_log == [] and state.epoch == 0


def test_a_model_without_optimizer_is_named():
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="compiled model"):
        dist.KerasState(model)


@pytest.mark.skipif(not KERAS3, reason="Horovod's own state works on Keras 2")
def test_horovods_own_state_fails_on_keras3_which_is_why_this_one_exists():
    from horovod.tensorflow.elastic import TensorFlowKerasState

    model = compiled()
    model.optimizer.build(model.trainable_variables)
    with pytest.raises(TypeError, match="not callable"):
        TensorFlowKerasState(model)


def test_run_restarts_from_the_last_commit_after_a_failed_collective():
    # The restart shuts Horovod down and starts it again in this process: in a fresh
    # interpreter, since a test process that used Horovod before (the Keras 2 stack) does
    # not survive a shutdown and second init of its background thread.
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import test_elastic_state as t; "
            "t.restart_from_commit()")
    proc = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "restarted from the commit" in proc.stdout


def restart_from_commit():
    import tensorflow as tf

    from bwkeras.distributed.elastic import run

    model = compiled()
    state = dist.KerasState(model, epoch=0, done=[])
    calls = []

    @run
    def work(state):
        calls.append((state.epoch, list(state.done)))
        state.done.append(len(calls))
        state.epoch += 1
        state.commit()
        if len(calls) == 1:
            train(model)        # progress after the commit, lost with the peer
            state.epoch += 10
            state.done.append(99)
            # what a compiled step raises when a peer's connection drops
            raise tf.errors.UnknownError(None, None, "HorovodAllreduce_grads_0 failed: gloo "
                                         "connection closed by peer")
        return "done"

    committed = values(state.variables())
    assert work(state) == "done"
    # the second attempt began from the commit of the first, not from its later progress
    assert calls == [(0, []), (1, [1])]
    assert state.epoch == 2 and state.done == [1, 2]
    assert all(np.array_equal(a, b) for a, b in zip(committed, values(state.variables())))
    print("restarted from the commit")


def test_run_lets_other_errors_through():
    import tensorflow as tf

    from bwkeras.distributed.elastic import run

    state = dist.KerasState(compiled())

    @run
    def work(state):
        raise tf.errors.InvalidArgumentError(None, None, "a shape mismatch, not a peer")

    with pytest.raises(tf.errors.InvalidArgumentError, match="shape mismatch"):
        work(state)
