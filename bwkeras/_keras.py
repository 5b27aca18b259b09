"""Which Keras this process runs, answered once for the whole package, and what the
package's models need from it that differs between Keras 2 and 3."""
import keras
import numpy as np

KERAS_VERSION = tuple(int(p) for p in keras.__version__.split(".")[:2])
KERAS3 = KERAS_VERSION[0] >= 3

if KERAS3:
    register_serializable = keras.saving.register_keras_serializable
else:  # Keras 2.15 keeps the same decorator under utils.
    register_serializable = keras.utils.register_keras_serializable

_BASE_KEYS = ("name", "trainable", "dtype")


def model_config(model, parent_get_config, **arguments):
    """The config of a subclassed model: Keras' own base config plus `arguments`.

    parent_get_config: the calling class's ``super().get_config``. The base config holds
    the name, `trainable` and the dtype policy, so all three survive ``model.save`` /
    ``keras.models.load_model``; `arguments` are the class's own constructor arguments.
    Keras 3 answers with those keys. Keras 2.15's ``Model.get_config`` returns {} for a
    model that overrides it (and may raise NotImplementedError for one that does not), so
    the missing keys then come from ``keras.layers.Layer.get_config``, which every Keras 2
    layer writes.
    """
    try:
        config = dict(parent_get_config())
    except NotImplementedError:
        config = {}
    if not all(key in config for key in _BASE_KEYS):
        config = {**keras.layers.Layer.get_config(model), **config}
    config.update(arguments)
    return config


WEIGHT_DTYPES = ("float32", "float64")


def weight_dtype(dtype):
    """"float32" or "float64" from a dtype name, a numpy / TF dtype, a Keras dtype policy
    or a policy as a config saved it; ValueError for anything else.

    For models whose weights and forward pass share one float type, so a mixed policy
    (float16 compute, float32 weights) is refused too.
    """
    name = _float_name(dtype)
    if name not in WEIGHT_DTYPES:
        raise ValueError(f"dtype must be one of {WEIGHT_DTYPES}, got {dtype!r}")
    return name


def _float_name(dtype):
    if KERAS3 and isinstance(dtype, dict):  # Keras 3 saves a policy as its config
        try:
            dtype = keras.dtype_policies.get(dtype)
        except (TypeError, ValueError):
            return None
    if hasattr(dtype, "variable_dtype"):    # a dtype policy, on either Keras
        return dtype.variable_dtype if dtype.variable_dtype == dtype.compute_dtype else None
    try:  # names, numpy and TF dtypes
        return np.dtype(getattr(dtype, "as_numpy_dtype", dtype)).name
    except (TypeError, ValueError):
        return None


def build_optimizer(model):
    """Create the optimizer's slots now, so their initial state can be broadcast too.

    Every rank must end with the same variables in the same order, so "built" is read from
    the optimizer's own flag, never guessed from its variables (a Keras 2 optimizer holds
    `iterations` before it is built).
    """
    optimizer = model.optimizer
    variables = model.trainable_variables
    if hasattr(optimizer, "build"):              # Keras 3, and Keras 2's current optimizers
        built = getattr(optimizer, "built", getattr(optimizer, "_built", False))
        if not built:
            optimizer.build(variables)
    elif hasattr(optimizer, "_create_all_weights"):  # Keras 2 legacy optimizers
        optimizer._create_all_weights(variables)
