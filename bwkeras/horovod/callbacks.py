"""Horovod's Keras callbacks (``horovod.tensorflow.keras.callbacks``) for Keras 2 and 3;
implemented in ``bwkeras.distributed.horovod_callbacks``."""
from bwkeras.distributed.horovod_callbacks import (  # noqa: F401
    BestModelCheckpoint, BroadcastGlobalVariablesCallback, LearningRateScheduleCallback,
    LearningRateWarmupCallback, MetricAverageCallback,
)
from bwkeras.distributed.horovod_callbacks import __all__  # noqa: F401
