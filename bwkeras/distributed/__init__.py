"""Data-parallel training with Horovod's ring-allreduce; the only code that imports horovod.

    from bwkeras import distributed as dist
    dist.init()
    opt = dist.DistributedOptimizer(keras.optimizers.SGD(dist.scale_learning_rate(0.01)))
    model.compile(optimizer=opt, loss="mse")
    model.fit(*dist.shard((x, y)), callbacks=dist.callbacks(), verbose=dist.fit_verbosity())

Every call also works in a plain process (size 1), so one script serves both.
"""
from .runtime import (
    allgather, allgather_object, allreduce, barrier, broadcast, broadcast_variables, cpu_threads,
    fit_verbosity,
    horovod, init, is_chief, launcher_world_size, local_rank, local_size, rank, size,
)
from .lr import LR_RULES, scale_learning_rate
from .sharding import shard
from .keras_callbacks import (
    BroadcastInitialState, LearningRateWarmup, MetricAverage, ReplicaDigest, callbacks,
)
from .optimizer import COMPRESSIONS, DistributedOptimizer
from .preemption import EXIT_PREEMPTED, StopOnSignal

__all__ = [
    "init", "rank", "size", "local_rank", "local_size", "is_chief", "fit_verbosity", "horovod",
    "launcher_world_size", "cpu_threads", "allreduce", "allgather", "allgather_object", "broadcast",
    "broadcast_variables", "barrier", "scale_learning_rate", "LR_RULES", "shard", "callbacks",
    "BroadcastInitialState", "MetricAverage", "ReplicaDigest", "LearningRateWarmup", "DistributedOptimizer",
    "COMPRESSIONS", "StopOnSignal", "EXIT_PREEMPTED",
]
