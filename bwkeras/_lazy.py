"""Lazy attributes for a package's __init__ (PEP 562), so importing a package is cheap.

    __getattr__, __dir__, __all__ = lazy_attributes(__name__, {"MLP": ".mlp", ...})

A name is imported from its submodule the first time it is used. The recipes import
``bwkeras.distributed`` and ``bwkeras.models`` at the top, yet resolving a recipe's config
(``bwkeras show-config``, ``bwkeras submit``) must not start TensorFlow: only using
``dist.DistributedOptimizer`` or ``models.MLP`` does. Hand-written rather than the
``lazy_loader`` package: it is these few lines, one dependency fewer, and it keeps a
function that shares its submodule's name (``timeseries.acf``) the function.
"""
import importlib
import sys
import types


class _LazyPackage(types.ModuleType):
    def __setattr__(self, name, value):
        # Importing submodule P.acf binds it as attribute `acf` of P, which would hide the
        # function acf that P exports; an eager `from .acf import acf` overwrote it back.
        lazy = self.__dict__.get("_lazy_names", {})
        if (name in lazy and isinstance(value, types.ModuleType)
                and value.__name__ == f"{self.__name__}.{name}"):
            return
        super().__setattr__(name, value)


def lazy_attributes(package, names):
    """(__getattr__, __dir__, __all__) for `package`; `names` maps attribute -> submodule
    (relative, e.g. ".runtime")."""
    module = sys.modules[package]
    module._lazy_names = dict(names)
    module.__class__ = _LazyPackage

    def __getattr__(name):
        if name in names:
            value = getattr(importlib.import_module(names[name], package), name)
            module.__dict__[name] = value  # cache: later lookups skip __getattr__
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(module.__dict__) | set(names))

    return __getattr__, __dir__, list(names)
