"""Elastic state for a compiled Keras model, on Keras 3 and Keras 2, over Horovod's elastic
machinery (``horovod.common.elastic``: host notifications, `HostsUpdatedInterrupt`,
`HorovodInternalError`, the reset loop of ``hvd.elastic.run``).

    state = dist.KerasState(model, epoch=0, batch=0, seen=0)
    state.commit()      # the current weights, optimizer variables and values, in host memory
    state.restore()     # back to the last commit (after a peer failed mid-step)
    state.sync()        # rank 0's committed state on every rank, a newly joined one too

Horovod's own ``TensorFlowKerasState`` calls ``optimizer.variables()``, which on Keras 3 is
a list, not a method, so it fails there; this one reads the optimizer's variables on
either major, creates the optimizer's slots before the first commit (so a commit made
before the first step holds them, and every rank holds the same variables to broadcast),
and keeps its copies as numpy arrays, off the device.
"""
import copy

import keras
import numpy as np

from horovod.common.elastic import ObjectState

from .._keras import build_optimizer
from . import runtime
from .keras_callbacks import _optimizer_variables

__all__ = ["KerasState", "CommitState", "run", "fit"]


class KerasState(ObjectState):
    """Committed state of a compiled Keras `model`: its variables, its optimizer's
    variables (`optimizer`, default the compiled one), `epoch` (epochs finished), `batch`
    (steps done in the next), `seen` (samples of its order the world trained, see `fit`)
    and any other picklable values given as keywords, each an attribute."""

    def __init__(self, model, optimizer=None, epoch=0, batch=0, seen=0, **values):
        optimizer = optimizer if optimizer is not None else getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(f"KerasState needs a compiled model or an optimizer; {model!r} "
                             "has no optimizer (call model.compile first)")
        if not model.built:
            raise ValueError(f"KerasState needs a built model; build {model!r} first "
                             "(call it on a batch, or give it a keras.Input)")
        self.model = model
        self.optimizer = optimizer
        build_optimizer(model)
        self._saved_variables = None
        self._save_variables()
        super().__init__(bcast_object=self._broadcast_object, get_rank=runtime.rank,
                         epoch=epoch, batch=batch, seen=seen, **values)

    @staticmethod
    def _broadcast_object(obj):
        return runtime.broadcast_object(obj, root_rank=0, name="bwkeras.elastic.state")

    def variables(self):
        """The model's variables, then the optimizer's, in an order every rank shares."""
        return list(self.model.variables) + _optimizer_variables(self.optimizer)

    def _save_variables(self):
        self._saved_variables = [np.array(v.numpy() if hasattr(v, "numpy") else v, copy=True)
                                 for v in self.variables()]

    def _load_variables(self):
        current = self.variables()
        if len(current) != len(self._saved_variables):
            raise ValueError(f"the model and optimizer hold {len(current)} variables, the commit "
                             f"{len(self._saved_variables)}: restore needs the same model")
        for var, value in zip(current, self._saved_variables):
            var.assign(value)

    def save(self):
        self._save_variables()
        super().save()
        # Horovod keeps the objects themselves: a list appended to after the commit would
        # change the commit too. Copies keep it as it was.
        self._saved_state = copy.deepcopy(self._saved_state)

    def _set_attrs(self):
        for name, value in self._saved_state.items():
            setattr(self, name, copy.deepcopy(value))

    def restore(self):
        self._load_variables()
        super().restore()

    def sync(self):
        runtime.broadcast_variables(self.variables(), root_rank=0, prefix="bwkeras.elastic")
        self._save_variables()
        super().sync()

    def check_host_updates(self):
        """Horovod's check at every commit, with one max-allreduce of four numbers in place
        of its pickled broadcast of rank 0's view (two collectives; Horovod's own TODO
        there asks for this): the newest host notification any rank received, and whether
        hosts were removed or added. Every rank then raises `HostsUpdatedInterrupt` at the
        same step, or none does. The commit's cost is mostly this collective."""
        from horovod.common.exceptions import HostsUpdatedInterrupt
        from horovod.runner.elastic.worker import HostUpdateResult

        prev = newest = self._last_updated_timestamp
        update = HostUpdateResult.no_update
        while not self._host_messages.empty():
            timestamp, result = self._host_messages.get()
            if timestamp > newest:
                newest, update = timestamp, update | result
        seen = runtime.allreduce(
            np.array([prev, newest, bool(update & HostUpdateResult.removed),
                      bool(update & HostUpdateResult.added)], dtype=np.float64),
            op="max", name="bwkeras.elastic.hosts")
        prev, self._last_updated_timestamp = seen[0], seen[1]
        if self._last_updated_timestamp > prev:
            # only removals: the ranks left hold the committed state already, no sync
            raise HostsUpdatedInterrupt(bool(seen[2]) and not seen[3])


def _reset():
    """After a change of world: Horovod shut down and initialised again with the new ranks."""
    hvd = runtime.horovod()
    if hvd is None:  # a lone process: nothing to re-form
        return
    hvd.shutdown()
    hvd.init()
    runtime._STATE["hosts"] = None  # the host list of the old world


def run(func):
    """``hvd.elastic.run`` for bwkeras: ``func(state, ...)`` runs after `state.sync()`,
    and again, from the last commit, after a peer failed (`HorovodInternalError`: the
    uncommitted progress is rolled back with `state.restore()`) or the hosts changed
    (`HostsUpdatedInterrupt`, raised by a commit on every rank at the same step).

    A failed collective reaches Keras as a TensorFlow error naming a Horovod op, from a
    compiled train step or from bwkeras' eager collectives; it is turned into
    `HorovodInternalError` here, as Horovod's own ``run`` does for its graph ops.
    """
    import functools

    import tensorflow as tf
    from horovod.common.elastic import run_fn
    from horovod.common.exceptions import HorovodInternalError

    @functools.wraps(func)
    def wrapper(state, *args, **kwargs):
        try:
            return func(state, *args, **kwargs)
        except tf.errors.OpError as exc:
            text = str(exc)
            if "Horovod" in text or "gloo" in text.lower():
                raise HorovodInternalError(exc) from exc
            raise

    return run_fn(wrapper, _reset)


class CommitState(keras.callbacks.Callback):
    """Keep a `KerasState`'s position and commit it every `every` steps and at epoch ends.

    The state's `epoch` (epochs finished), `batch` (steps done in the epoch) and `seen`
    (samples of the epoch's order the world trained) move with training; a commit that
    finds the hosts changed raises `HostsUpdatedInterrupt` on every rank at the same step.
    """

    def __init__(self, state, every=20):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"commit interval must be an integer >= 1 (steps), got {every!r}")
        self.state = state
        self.every = every
        self.step_samples = 0   # samples the whole world trains per step
        self.limit = None       # `seen` once this fit's part of the epoch is done

    def on_train_batch_end(self, batch, logs=None):
        state = self.state
        state.batch += 1
        state.seen += self.step_samples
        if self.limit is not None:
            state.seen = min(state.seen, self.limit)
        if state.batch % self.every == 0:
            state.commit()

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        state.epoch, state.batch, state.seen = epoch + 1, 0, 0
        state.commit()


class _RanksInLogs(keras.callbacks.Callback):
    """The number of ranks that finished the epoch, in its logs (history.csv's `ranks`)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["ranks"] = runtime.size()


def fit(state, x, y, epochs, batch_size, seed=0, learning_rate=None, lr_rule="linear",
        commit_steps=20, callbacks=(), verbose=0):
    """Train `state.model` on (x, y) for `epochs` epochs, elastically: after a change of
    world it continues from the last commit with the ranks there are.

    Every epoch visits the samples in `sharding.epoch_order(len(x), seed, epoch)`; the ones
    the world has not trained yet in the epoch (`state.seen` onwards) are dealt out over the
    ranks in turn, the same number to each (equal step counts, no hang; fewer than one per
    rank is dropped), so no sample is trained twice in an epoch because the world changed.
    `batch_size` is per rank. With `learning_rate`, the optimizer's rate is set to it scaled
    by `lr_rule` for the current number of ranks at every (re)start. `callbacks` run after
    the metric averaging and before the commit; each epoch's logs carry `ranks`.
    Returns the model.
    """
    from .keras_callbacks import MetricAverage
    from .lr import scale_learning_rate
    from .sharding import epoch_order, unseen_share

    model = state.model
    n = len(x)
    commit = CommitState(state, commit_steps)

    @run
    def train(state):
        size, rank = runtime.size(), runtime.rank()
        if learning_rate is not None:
            model.optimizer.learning_rate.assign(scale_learning_rate(learning_rate, lr_rule, size))
        for epoch in range(state.epoch, epochs):
            mine = unseen_share(epoch_order(n, seed, epoch), state.seen, rank, size)
            if len(mine) == 0:  # fewer unseen samples than ranks: the epoch is over
                commit.on_epoch_end(epoch)
                continue
            commit.step_samples, commit.limit = size * batch_size, state.seen + len(mine) * size
            model.fit(x[mine], y[mine], batch_size=batch_size, epochs=epoch + 1,
                      initial_epoch=epoch, shuffle=False, verbose=verbose,
                      callbacks=[_RanksInLogs(), MetricAverage(), *callbacks, commit])
        return model

    return train(state)
