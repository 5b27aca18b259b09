"""Learning-rate scaling rules for a global batch that grows with the number of ranks."""
import math

from . import model_parallel

LR_RULES = ("linear", "sqrt", "none")


def scale_learning_rate(lr, rule="linear", size=None):
    """lr x size (Goyal et al. 2017), lr x sqrt(size) (Krizhevsky 2014), or lr unchanged.

    size: default the number of replicas, which is how many times the global batch grew:
    every rank, or under model parallelism the number of model groups."""
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"learning rate must be a positive finite number, got {lr!r}")
    if rule not in LR_RULES:
        raise ValueError(f"learning-rate rule {rule!r} is not one of {LR_RULES}")
    n = model_parallel.layout().d if size is None else size
    return {"linear": lr * n, "sqrt": lr * math.sqrt(n), "none": float(lr)}[rule]
