"""bwkeras: from least squares to LSTMs with Keras, scaled out with Horovod.

Importing the package is cheap: TensorFlow, Keras and Horovod are imported only when a
submodule that needs them is first used (``bwkeras.regression``, ``bwkeras.distributed``...).
Under a launcher with several ranks, importing it sets per-rank defaults in the environment
(never overriding the user's): see ``bwkeras._rank_env.apply_rank_defaults``. It also arms
a guard that turns Horovod's own Keras layer on Keras 3, where each rank would silently
train alone, into an error saying what to import instead (``bwkeras.distributed.horovod_guard``).
"""
import importlib

from . import _rank_env
from .distributed import horovod_guard as _horovod_guard

__version__ = "0.1.0"

# Under a multi-rank launcher: each rank's share of the cores for TensorFlow, and Open MPI
# yielding while it waits. Both must be in place before TensorFlow or MPI start, hence here.
_rank_env.apply_rank_defaults()
# Free until Horovod's Keras layer is imported; then it refuses to train on Keras 3.
_horovod_guard.install()

_SUBMODULES = (
    "activations", "atomic", "batch", "callbacks", "checkpoints", "config", "data", "datasets",
    "distributed", "horovod", "models", "parallel", "plots", "regression", "report", "runs", "timeseries",
    "training",
)


def __getattr__(name):
    # PEP 562 lazy submodules: `bwkeras.regression` works without an explicit import,
    # and `import bwkeras` alone never pulls in TensorFlow or Horovod.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'bwkeras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
