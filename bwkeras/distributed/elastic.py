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

import numpy as np

from horovod.common.elastic import ObjectState

from .._keras import build_optimizer
from . import runtime
from .keras_callbacks import _optimizer_variables

__all__ = ["KerasState"]


class KerasState(ObjectState):
    """Committed state of a compiled Keras `model`: its variables, its optimizer's
    variables (`optimizer`, default the compiled one), `epoch`, `batch` (steps done in
    that epoch) and any other picklable values given as keywords, each an attribute."""

    def __init__(self, model, optimizer=None, epoch=0, batch=0, **values):
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
                         epoch=epoch, batch=batch, **values)

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
