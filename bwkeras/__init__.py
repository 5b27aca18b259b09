"""bwkeras: from least squares to LSTMs with Keras, scaled out with Horovod.

Importing the package is cheap: TensorFlow, Keras and Horovod are imported only when a
submodule that needs them is first used (``bwkeras.regression``, ``bwkeras.distributed``...).
"""
import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "activations", "config", "data", "datasets", "distributed", "launch", "models",
    "plots", "regression", "timeseries",
)


def __getattr__(name):
    # PEP 562 lazy submodules: `bwkeras.regression` works without an explicit import,
    # and `import bwkeras` alone never pulls in TensorFlow or Horovod.
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'bwkeras' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
