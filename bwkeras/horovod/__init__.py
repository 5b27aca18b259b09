"""Horovod's Keras API (``horovod.tensorflow.keras``) that works on Keras 2 and Keras 3.

An existing Horovod Keras script changes one line::

    import horovod.tensorflow.keras as hvd    # before
    import bwkeras.horovod as hvd             # after

and keeps ``hvd.init()``, ``hvd.DistributedOptimizer(...)``, ``hvd.callbacks.*``,
``hvd.allreduce`` and the rest, with Horovod's keywords, defaults and semantics (see
docs/migration.md for the table of names and the few differences). Importing it starts
TensorFlow and Horovod, as ``import horovod.tensorflow.keras`` does.

A thin namespace: the implementation lives in ``bwkeras.distributed.horovod_api`` and
``bwkeras.distributed.horovod_callbacks``, next to the rest of the Horovod-facing code.
"""
from bwkeras.distributed.horovod_api import *  # noqa: F401,F403
from bwkeras.distributed.horovod_api import __all__ as _api

from . import callbacks  # noqa: E402  (hvd.callbacks.BroadcastGlobalVariablesCallback, ...)

__all__ = list(_api) + ["callbacks"]
