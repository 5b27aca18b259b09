"""A loud error where Horovod's own Keras layer would let each rank train alone (Keras 3).

On Keras 3, ``horovod.tensorflow.keras.DistributedOptimizer`` (and ``horovod.keras``'s)
wraps the optimizer but overrides only hooks that Keras 3 never calls: ``fit`` runs, each
rank updates its weights with its own gradients, and the job ends with as many different
models as ranks, without a word. Horovod's Keras callbacks fail there too, with errors
that do not say why.

``import bwkeras`` calls :func:`install`. It changes nothing until Horovod's Keras layer is
imported, before or after bwkeras; then, on Keras 3 only:

* an optimizer made by Horovod's ``DistributedOptimizer`` raises
  :class:`HorovodKerasError` at its first update (the first step of the first ``fit``, or
  of a custom loop), before any rank has trained alone;
* Horovod's Keras callbacks raise it when training begins.

Why this hook: the check sits on Horovod's own objects, so it costs nothing to any other
model or optimizer, catches custom training loops as well as ``fit``, and needs no change
to Keras. Wrapping ``keras.Model.fit`` instead would run for every model in the process
and miss custom loops. The price is a post-import hook for two module names
(``horovod._keras`` and ``horovod._keras.callbacks``, which both of Horovod's Keras
front-ends use), and that an optimizer made before bwkeras was first imported is not
caught (its callbacks still are).
"""
import importlib.abc
import sys

BWKERAS_IMPORT = "import bwkeras.horovod as hvd"


class HorovodKerasError(RuntimeError):
    """Horovod's Keras layer used on Keras 3, where each rank would train alone."""


def _message(what, version):
    return (
        f"{what} does not work with Keras {version}: Keras 3 never calls the hooks Horovod's "
        "Keras layer relies on, so every rank would train alone on its own data and end "
        "with its own weights, without any error. Replace `import horovod.tensorflow.keras "
        f"as hvd` (or horovod.keras) by `{BWKERAS_IMPORT}`: the same names, working on "
        "Keras 3 (or use bwkeras.distributed)."
    )


def _keras3():
    """The Keras 3 package if that is what `import keras` gives, else None."""
    keras = sys.modules.get("keras")
    if keras is None:
        try:
            import keras
        except ImportError:  # pragma: no cover
            return None
    try:
        major = int(str(keras.__version__).split(".")[0])
    except (AttributeError, ValueError):  # pragma: no cover
        return None
    return keras if major >= 3 else None


# ---- the two patches ------------------------------------------------------------------

def _guard_optimizer_factory(module):
    """horovod._keras.create_distributed_optimizer: mark the Keras 3 optimizers it makes."""
    original = module.create_distributed_optimizer
    if getattr(original, "_bwkeras_guarded", False):
        return

    def create_distributed_optimizer(keras, optimizer, *args, **kwargs):
        wrapped = original(keras, optimizer, *args, **kwargs)
        keras3 = _keras3()
        if keras3 is not None and isinstance(wrapped, keras3.optimizers.Optimizer):
            cls = type(wrapped)
            what = f"Horovod's DistributedOptimizer (around {cls.__name__})"

            def apply(self, *a, **k):
                raise HorovodKerasError(_message(what, keras3.__version__))

            cls.apply = apply  # Keras 3's apply_gradients and fit's train step call this
        return wrapped

    create_distributed_optimizer._bwkeras_guarded = True
    create_distributed_optimizer.__wrapped__ = original
    module.create_distributed_optimizer = create_distributed_optimizer


_CALLBACK_IMPLS = ("BroadcastGlobalVariablesCallbackImpl", "MetricAverageCallbackImpl",
                   "LearningRateScheduleCallbackImpl")


def _guard_callbacks(module):
    """horovod._keras.callbacks: the Impl classes behind every Horovod Keras callback
    refuse to start training on Keras 3 (Keras 2 and tf_keras pass through)."""
    for name in _CALLBACK_IMPLS:
        impl = getattr(module, name, None)
        if impl is None or "_bwkeras_guarded" in impl.__dict__:
            continue
        original = impl.__dict__.get("on_train_begin")

        def on_train_begin(self, logs=None, _impl=impl, _original=original):
            keras3 = _keras3()
            if keras3 is not None and isinstance(self, keras3.callbacks.Callback):
                raise HorovodKerasError(_message(
                    f"Horovod's {type(self).__name__}", keras3.__version__))
            if _original is not None:
                return _original(self, logs)
            return super(_impl, self).on_train_begin(logs)

        impl.on_train_begin = on_train_begin
        impl._bwkeras_guarded = True


_PATCHES = {"horovod._keras": _guard_optimizer_factory,
            "horovod._keras.callbacks": _guard_callbacks}


# ---- the post-import hook -------------------------------------------------------------

class _PatchingLoader(importlib.abc.Loader):
    """Runs the real loader, then the patch for that module."""

    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):  # get_source, is_package, ... of the real loader
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Answers only for the patched module names, with the other finders' spec and a
    loader that patches after executing the module."""

    def find_spec(self, fullname, path, target=None):
        patch = _PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, patch)
        return spec


def install():
    """Patch Horovod's Keras layer now if it is loaded, else when it is (idempotent)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name, patch in _PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
