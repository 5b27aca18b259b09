"""Which Keras this process runs, answered once for the whole package."""
import keras

KERAS_VERSION = tuple(int(p) for p in keras.__version__.split(".")[:2])
KERAS3 = KERAS_VERSION[0] >= 3

if KERAS3:
    register_serializable = keras.saving.register_keras_serializable
else:  # Keras 2.15 keeps the same decorator under utils.
    register_serializable = keras.utils.register_keras_serializable
