"""Data-parallel training with Horovod's ring-allreduce; the only code that imports horovod.

    from bwkeras import distributed as dist
    dist.init()
    opt = dist.DistributedOptimizer(keras.optimizers.SGD(dist.scale_learning_rate(0.01)))
    model.compile(optimizer=opt, loss="mse")
    model.fit(*dist.shard((x, y)), callbacks=dist.callbacks(), verbose=dist.fit_verbosity())

Every call also works in a plain process (size 1), so one script serves both. Names load
on first use (the optimizer and callbacks import Keras), so ``from bwkeras import
distributed as dist`` at the top of a script starts neither TensorFlow nor Horovod.
"""
from .._lazy import lazy_attributes

__getattr__, __dir__, __all__ = lazy_attributes(__name__, {
    **dict.fromkeys([
        "init", "rank", "size", "local_rank", "local_size", "is_chief", "fit_verbosity",
        "horovod", "world_size_from_env", "cpu_threads", "allreduce", "allgather",
        "allgather_object", "broadcast", "broadcast_object", "broadcast_variables", "agree",
        "agreed", "barrier", "hosts"], ".runtime"),
    "StallWatchdog": ".watchdog", "stall_seconds": ".watchdog",
    "scale_learning_rate": ".lr", "LR_RULES": ".lr",
    "shard": ".sharding", "per_rank_batch": ".sharding", "unseen_share": ".sharding",
    **dict.fromkeys(["BroadcastInitialState", "LearningRateWarmup", "MetricAverage",
                     "ReplicaDigest", "callbacks"], ".keras_callbacks"),
    "COMPRESSIONS": ".optimizer", "DistributedOptimizer": ".optimizer",
    "EXIT_PREEMPTED": ".preemption", "StopOnSignal": ".preemption",
    "stopped_mid_epoch": ".preemption",
    "KerasState": ".elastic",
    **dict.fromkeys(["init_model_parallel", "layout", "Layout", "broadcast_model"], ".model_parallel"),
})
