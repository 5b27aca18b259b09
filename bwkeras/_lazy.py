"""Lazy attributes for a package's __init__ (PEP 562), so importing a package is cheap.

    __getattr__, __dir__, __all__ = lazy_attributes(__name__, {"shard": ".sharding", ...})

A name is imported from its submodule the first time it is used. Scripts write ``from
bwkeras import distributed as dist`` at the top, yet resolving a recipe's config
(``bwkeras show-config``, ``bwkeras submit``) must not start TensorFlow: only using
``dist.DistributedOptimizer`` does. Packages that register Keras classes (models,
regression, timeseries) stay eager: ``keras.models.load_model`` finds a class only once
its module ran. Hand-written rather than the ``lazy_loader`` package: it is these few
lines, and one dependency fewer.
"""
import importlib
import sys


def lazy_attributes(package, names):
    """(__getattr__, __dir__, __all__) for `package`; `names` maps attribute -> submodule
    (relative, e.g. ".runtime"). An attribute must not share its name with a submodule:
    importing the submodule would bind the module in its place."""
    module = sys.modules[package]

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            module.__dict__[name] = value  # cache: later lookups skip __getattr__
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(module.__dict__) | set(names))

    return __getattr__, __dir__, list(names)
