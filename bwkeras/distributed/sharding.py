"""Disjoint per-rank parts of a data set with the same number of samples on every rank.

Horovod needs the same number of steps per epoch on every rank (a rank with one batch
more waits forever in its allreduce), so every shard has exactly n // size samples:
the n % size samples left over are dropped. Shards are strided (rank r takes samples
r, r + size, ...), matching tf.data's `shard`, so a sorted file still gives each rank a
spread of the data.
"""
import numpy as np

from . import model_parallel, runtime


_KINDS = "numpy arrays, pandas objects, a tuple/list/dict of those, or a tf.data.Dataset"


def _check_part(obj):
    import pandas as pd

    if not isinstance(obj, (np.ndarray, pd.DataFrame, pd.Series)):
        raise TypeError(f"shard expects {_KINDS}; got {type(obj).__name__}")
    return obj


def _take(obj, start, stop, step):
    return obj.iloc[start:stop:step] if hasattr(obj, "iloc") else obj[start:stop:step]


def shard(data, rank=None, size=None):
    """This rank's part of `data`.

    data: a numpy array, pandas DataFrame/Series, a tuple/list/dict of those (all the same
    length, sharded alike, e.g. ``shard((x, y))``), or a tf.data.Dataset of known
    cardinality (shard before `batch`).
    rank, size: default this rank's data group and their number: every rank under plain
    data parallelism, the model groups under model parallelism (the k ranks of a model
    group hold one model between them and take the same batch).
    """
    replicas = model_parallel.layout()
    r = replicas.data_index if rank is None else rank
    n_ranks = replicas.d if size is None else size
    if not (isinstance(n_ranks, int) and n_ranks >= 1 and isinstance(r, int) and 0 <= r < n_ranks):
        raise ValueError(f"need 0 <= rank < size, got rank={r!r}, size={n_ranks!r}")

    try:
        import tensorflow as tf
        if isinstance(data, tf.data.Dataset):
            return _shard_dataset(data, r, n_ranks)
    except ImportError:  # pragma: no cover
        pass

    if isinstance(data, dict):
        parts = list(data.values())
    elif isinstance(data, (tuple, list)):
        parts = list(data)
    else:
        parts = [data]
    lengths = {len(_check_part(p)) for p in parts}
    if len(lengths) != 1:
        raise ValueError(f"all arrays to shard must have the same length, got lengths {sorted(lengths)}")
    (n,) = lengths
    per_rank = n // n_ranks
    if per_rank == 0:
        raise ValueError(f"cannot shard {n} samples over {n_ranks} ranks: every rank needs at least one")
    stop = per_rank * n_ranks
    out = [_take(p, r, stop, n_ranks) for p in parts]
    if isinstance(data, dict):
        return dict(zip(data.keys(), out))
    if isinstance(data, (tuple, list)):
        return type(data)(out)
    return out[0]


def _shard_dataset(dataset, r, n_ranks):
    import tensorflow as tf

    n = int(dataset.cardinality())
    if n == tf.data.INFINITE_CARDINALITY:
        return dataset.shard(n_ranks, r)
    if n == tf.data.UNKNOWN_CARDINALITY:
        raise ValueError(
            "cannot shard a tf.data.Dataset of unknown cardinality evenly; declare it with "
            "dataset.apply(tf.data.experimental.assert_cardinality(n))"
        )
    if n // n_ranks == 0:
        raise ValueError(f"cannot shard {n} elements over {n_ranks} ranks: every rank needs at least one")
    return dataset.take(n // n_ranks * n_ranks).shard(n_ranks, r)


def per_rank_batch(global_batch, size=None):
    """The batch each rank takes per step so that `size` ranks (default: all) together take
    `global_batch`; ValueError when it does not split evenly into at least one per rank.
    Under model parallelism `size` defaults to the number of model groups (replicas)."""
    size = model_parallel.layout().d if size is None else size
    if global_batch < size:
        raise ValueError(f"global batch {global_batch} is smaller than the number of ranks "
                         f"({size}); every rank needs at least one sample per step")
    if global_batch % size:
        raise ValueError(f"global batch {global_batch} does not split evenly over {size} ranks; "
                         f"use a multiple of {size}")
    return global_batch // size


def epoch_order(n, seed, epoch):
    """The order in which epoch `epoch` visits `n` samples: a permutation that depends on
    (seed, epoch) alone, never on what the process drew before, so a resumed run, or one
    whose world changed in the middle of the epoch, visits the samples in the same order."""
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n))


def unseen_share(order, seen, rank=None, size=None):
    """Rank `rank`'s samples of `order` (indices) from position `seen` on: the rest dealt
    out over `size` ranks in turn, the same number to each (a remainder smaller than
    `size` is dropped: equal step counts on every rank, so no collective waits for a rank
    that has finished). Dealt in turn, the world's first k steps of batch b (per rank)
    train exactly order[seen : seen + k * b * size], so a count of samples the world
    trained names the same samples whatever the world size was: the position an elastic
    run resumes the epoch from after its world changed."""
    r = runtime.rank() if rank is None else rank
    n_ranks = runtime.size() if size is None else size
    if not 0 <= seen <= len(order):
        raise ValueError(f"seen must be between 0 and {len(order)} (the epoch's samples), got {seen!r}")
    rest = np.asarray(order)[seen:]
    return rest[r::n_ranks][:len(rest) // n_ranks]
