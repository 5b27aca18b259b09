"""Which Keras this process runs, answered once for the whole package."""
import keras

KERAS_VERSION = tuple(int(p) for p in keras.__version__.split(".")[:2])
KERAS3 = KERAS_VERSION[0] >= 3

if KERAS3:
    register_serializable = keras.saving.register_keras_serializable
else:  # Keras 2.15 keeps the same decorator under utils.
    register_serializable = keras.utils.register_keras_serializable


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
