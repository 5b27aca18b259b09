"""Initial values of one shard of a weight, drawn without making the whole weight.

A layer too wide for one rank's memory must not create its full kernel even briefly, so a
shard is drawn on its own, with the statistics of the whole: a variance-scaling
initializer (Glorot, He, LeCun) keeps the variance the full shape's fans give, and every
random initializer gets a seed of its own per shard, or all k shards would hold the same
numbers (identical hidden units, whose symmetry training never breaks). The values are
therefore not those a one-process model with the same seed draws; a sharded model that
must equal a given one gets its weights with ``set_full_weights`` or ``load_weights``.

Initializers whose values depend on the whole matrix (Orthogonal, Identity, anything
unknown) are drawn whole and sliced: exact, at the cost of the full weight for a moment.
"""
import random

import keras
import numpy as np

from ..distributed.model_parallel import shard_indices

# A prime coprime to 2**31 - 1 (as in keras_callbacks.SEED_STRIDE): shard s of a weight
# draws from seed + s * stride, so the shards' streams never coincide.
_SEED_STRIDE = 2654435761
_SEED_MODULUS = 2**31 - 1

_IID = (keras.initializers.RandomNormal, keras.initializers.RandomUniform,
        keras.initializers.TruncatedNormal)
_CONSTANT = (keras.initializers.Zeros, keras.initializers.Ones, keras.initializers.Constant)


def _fan(shape, mode):
    fan_in, fan_out = (shape[0], shape[-1]) if len(shape) == 2 else (np.prod(shape), np.prod(shape))
    return {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]


def _base_seed(initializer):
    """The initializer's own integer seed (Keras gives every initializer made without one
    an integer from Python's `random`, which ``keras.utils.set_random_seed`` seeds), or
    for a SeedGenerator one from Python's `random` likewise."""
    seed = getattr(initializer, "seed", None)
    return seed if isinstance(seed, int) else random.randint(1, _SEED_MODULUS - 1)


def take_shard(full, axis, k, index, blocks=1):
    """Shard `index` of k of a tensor (symbolic too) along `axis` (see
    ``bwkeras.distributed.model_parallel.shard_slices``)."""
    return keras.ops.take(full, shard_indices(full.shape[axis], k, index, blocks), axis=axis)


def shard_initializer(initializer, full_shape, axis, k, index, blocks=1):
    """An initializer callable(shape, dtype) for shard `index` of k of a weight of
    `full_shape`, split along `axis` in `blocks` blocks (see
    ``bwkeras.distributed.model_parallel.shard_slices``)."""
    initializer = keras.initializers.get(initializer)
    if k == 1 or isinstance(initializer, _CONSTANT):
        return initializer
    full_shape = tuple(int(n) for n in full_shape)
    seed = None
    if isinstance(initializer, (keras.initializers.VarianceScaling,) + _IID):
        seed = (_base_seed(initializer) + index * _SEED_STRIDE) % _SEED_MODULUS
    if isinstance(initializer, keras.initializers.VarianceScaling):
        def draw(shape, dtype=None):
            # Keras divides `scale` by the fan of the shape it is given: scale it so the
            # shard's fan gives the variance of the full weight's. (Glorot and He keep
            # their mode and distribution as attributes, not in their configs.)
            mode = initializer.mode
            scale = initializer.scale * max(1.0, _fan(shape, mode)) / max(1.0, _fan(full_shape, mode))
            return keras.initializers.VarianceScaling(
                scale=scale, mode=mode, distribution=initializer.distribution,
                seed=seed)(shape, dtype=dtype)
        return draw
    if isinstance(initializer, _IID):
        return type(initializer).from_config({**initializer.get_config(), "seed": seed})

    def whole_then_slice(shape, dtype=None):
        return take_shard(initializer(full_shape, dtype=dtype), axis, k, index, blocks)
    return whole_then_slice
