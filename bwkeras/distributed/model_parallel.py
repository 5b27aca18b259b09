"""Model parallelism over Horovod: the rank layout, its process sets, and the
differentiable collectives of Megatron-style tensor parallelism.

N ranks run as d x k: d data-parallel replicas of a model split over k ranks. A model group
is k consecutive ranks (they share a node where they can: their collectives run every
layer, the data group's once a step); the data group of a rank is the d ranks that hold
the same shard in every model group:

    N = 4, k = 2:  model groups {0, 1} {2, 3}   data groups {0, 2} {1, 3}

Within a model group every rank sees the same batch and computes the same loss; the shards
of a layer live on different ranks, so their gradients are never averaged with each other.
Gradients are averaged over the data group only (`DistributedOptimizer` does it once a
layout is set up).

Megatron's two conjugate operators (Shoeybi et al. 2019, section 3), each with a custom
gradient: Horovod's own allreduce gradient is an allreduce of the upstream gradient, which
for a loss replicated on every rank of the group is k times too large.

- `copy_to_model_group` (f): identity forward, allreduce-sum backward. Before a
  column-parallel matmul, whose input gradient is only this rank's share of the sum.
- `reduce_from_model_group` (g): allreduce-sum forward, identity backward. After a
  row-parallel matmul, whose outputs are partial sums.
- `gather_last_axis`: all-gather along the last axis forward; backward, this rank's slice
  of the upstream gradient, which is already the full gradient because everything
  downstream of a gather either is replicated or goes through f first.

Every function works in a lone process and with k == 1 (identities, no communication).
Horovod is reached only through `runtime`.
"""
import math
from dataclasses import dataclass

import numpy as np

from .._checks import is_integer
from . import runtime


@dataclass(frozen=True)
class Layout:
    """Where this rank sits in the d x k grid.

    world: N ranks; k: ranks per model group; rank: this rank (global).
    model_set / data_set: the Horovod process sets of this rank's model and data groups;
    None where the group is a single rank (nothing to communicate), Horovod's global set
    where the group is every rank.
    """
    world: int
    k: int
    rank: int
    model_set: object = None
    data_set: object = None

    @property
    def d(self):
        """Number of data-parallel replicas (model groups)."""
        return self.world // self.k

    @property
    def shard(self):
        """This rank's shard index within its model group, 0 .. k-1."""
        return self.rank % self.k

    @property
    def data_index(self):
        """Which model group (replica) this rank belongs to, 0 .. d-1."""
        return self.rank // self.k

    @property
    def model_ranks(self):
        """The global ranks of this rank's model group, in shard order."""
        first = self.data_index * self.k
        return tuple(range(first, first + self.k))

    @property
    def data_ranks(self):
        """The global ranks of this rank's data group, in replica order."""
        return tuple(range(self.shard, self.world, self.k))


def check_model_parallel(k, world):
    """k as an int, or ValueError naming k, the world size and what is allowed: an integer
    >= 1 that divides the number of ranks (in a lone process, 1)."""
    if not is_integer(k) or k < 1:
        raise ValueError(f"model_parallel must be an integer >= 1 (ranks per model group), "
                         f"got {k!r}")
    k = int(k)
    if world == 1 and k > 1:
        raise ValueError(
            f"model_parallel={k} needs {k} ranks (or a multiple of {k}) started by a launcher "
            "(horovodrun, mpirun, srun), but this process runs alone (world size 1): "
            "model_parallel must be 1 without a launcher")
    if world % k:
        raise ValueError(f"model_parallel={k} must divide the number of ranks, got {world} "
                         f"ranks; allowed: {divisors(world)}")
    return k


def divisors(n):
    """The divisors of n, ascending (the values model_parallel may take with n ranks)."""
    return [i for i in range(1, n + 1) if n % i == 0]


def group_ranks(world, k):
    """(model groups, data groups) of N = world ranks with k per model group: lists of
    rank tuples, the same on every rank (the order Horovod's process sets are made in)."""
    d = world // k
    model = [tuple(range(g * k, g * k + k)) for g in range(d)]
    data = [tuple(range(s, world, k)) for s in range(k)]
    return model, data


def process_set_ranks(world, k):
    """The rank lists that need a Horovod process set of their own: groups of more than one
    rank that are not all ranks (those use the global set). Same list on every rank."""
    model, data = group_ranks(world, k)
    return [list(g) for g in model + data if 1 < len(g) < world]


def init_model_parallel(k):
    """Lay the ranks out as d x k with their process sets; returns the `Layout`.

    Call it on every rank, at the same point, before training: the models do when built
    with ``model_parallel=k``, and a script calls it in place of ``dist.init()``.
    Idempotent for the same k; another k raises ValueError. When Horovod is not running
    yet it starts here with the process sets the layout needs (none in a lone process,
    none for k == N or k == 1). When it already runs without them (a plain
    ``dist.init()`` came first), they are added dynamically, which Horovod allows only
    with HOROVOD_DYNAMIC_PROCESS_SETS=1 in the environment; otherwise ValueError says so.
    """
    current = runtime._STATE["layout"]
    started = runtime._STATE["initialised"]
    world = runtime.size() if started else (runtime.world_size_from_env() or 1)
    k = check_model_parallel(k, world)
    if current is not None:
        if current.k != k:
            raise ValueError(f"model_parallel={k} asked for, but this job is already laid out "
                             f"with model_parallel={current.k}; one job has one layout")
        return current
    wanted = process_set_ranks(world, k)
    if not started:
        runtime.init(process_sets=wanted or None)
    hvd = runtime.horovod()
    sets = runtime.process_sets()
    missing = [ranks for ranks in wanted if tuple(ranks) not in sets]
    if missing:
        sets.update(_add_process_sets(hvd, missing, k))
    rank = runtime.rank()
    model_ranks = tuple(range((rank // k) * k, (rank // k) * k + k))
    data_ranks = tuple(range(rank % k, world, k))
    current = Layout(world=world, k=k, rank=rank,
                     model_set=_set_for(hvd, model_ranks, world, sets),
                     data_set=_set_for(hvd, data_ranks, world, sets))
    runtime._STATE["layout"] = current
    return current


def _add_process_sets(hvd, wanted, k):
    """{ranks: process set} for `wanted` rank lists, added to a running Horovod."""
    import os

    if os.environ.get("HOROVOD_DYNAMIC_PROCESS_SETS") not in ("1", "true", "True"):
        raise ValueError(
            f"model_parallel={k} on {hvd.size()} ranks needs Horovod process sets for the "
            f"rank groups {wanted}, and Horovod was started without them: call "
            f"bwkeras.distributed.init_model_parallel({k}) before anything else starts "
            f"Horovod, or set HOROVOD_DYNAMIC_PROCESS_SETS=1 in the job's environment")
    # Every rank adds every set, in the same order: adding is a collective.
    return {tuple(ranks): hvd.add_process_set(ranks) for ranks in wanted}


def _set_for(hvd, ranks, world, sets):
    if len(ranks) == 1:
        return None
    if len(ranks) == world:
        return hvd.global_process_set
    return sets[tuple(ranks)]


def layout():
    """The current `Layout`; without `init_model_parallel`, the plain data-parallel one (k = 1)."""
    current = runtime._STATE["layout"]
    if current is not None:
        return current
    hvd = runtime.horovod()
    # The global set whenever Horovod runs, even on one rank: the optimizer's train step is
    # traced once, and an elastic job traced while it had one rank must still average
    # once the world grows again.
    return Layout(world=runtime.size(), k=1, rank=runtime.rank(),
                  data_set=hvd.global_process_set if hvd is not None else None)


def _model_group(k):
    """(layout, Horovod module) for collectives over a model group of k ranks; ValueError
    when the layout was set up for another k (a layer built for k shards in a job that is
    not)."""
    current = layout()
    if current.k != k:
        raise ValueError(f"a layer built with model_parallel={k} runs in a job laid out with "
                         f"model_parallel={current.k}; build the model in the job it runs in")
    return current, runtime.horovod()


# ---- differentiable collectives (TensorFlow, inside or outside tf.function) -----------

def copy_to_model_group(x, k):
    """Megatron's f: x unchanged forward; backward, the gradient summed over the model
    group (each rank's column-parallel matmul gave only its share of d loss / dx)."""
    import tensorflow as tf

    if k == 1:
        return x
    group, hvd = _model_group(k)

    @tf.custom_gradient
    def f(x):
        def grad(dy):
            return hvd.allreduce(dy, op=hvd.Sum, process_set=group.model_set)
        return tf.identity(x), grad

    return f(x)


def reduce_from_model_group(x, k):
    """Megatron's g: x summed over the model group forward; backward, the upstream gradient
    unchanged (it is already replicated: the loss is the same on every rank of the group)."""
    import tensorflow as tf

    if k == 1:
        return x
    group, hvd = _model_group(k)

    @tf.custom_gradient
    def g(x):
        def grad(dy):
            return tf.identity(dy)
        return hvd.allreduce(x, op=hvd.Sum, process_set=group.model_set), grad

    return g(x)


def gather_last_axis(x, k):
    """The model group's shards of x concatenated along the last axis, in shard order.

    Backward: this rank's slice of the upstream gradient. That is the full gradient of the
    shard because the gathered tensor's consumers either are replicated (their gradient is
    the same on every rank) or are column-parallel matmuls behind `copy_to_model_group`,
    whose backward sums the partial gradients over the group first.
    """
    import tensorflow as tf

    if k == 1:
        return x
    group, hvd = _model_group(k)
    shard = group.shard

    @tf.custom_gradient
    def gather(x):
        # Horovod gathers along axis 0: stack the shards on a new leading axis, then move it
        # in front of the last axis and merge the two.
        stacked = hvd.allgather(tf.expand_dims(x, 0), process_set=group.model_set)
        rank = len(x.shape)
        moved = tf.transpose(stacked, list(range(1, rank)) + [0, rank])
        shape = tf.concat([tf.shape(x)[:-1], [k * tf.shape(x)[-1]]], axis=0)
        out = tf.reshape(moved, shape)
        if x.shape[-1] is not None:
            out = tf.ensure_shape(out, x.shape[:-1].concatenate([k * x.shape[-1]]))

        def grad(dy):
            return tf.split(dy, k, axis=-1)[shard]
        return out, grad

    return gather(x)


# ---- shards of full arrays (numpy, host) -----------------------------------------------

def shard_slices(size, k, index, blocks=1):
    """Index ranges of shard `index` of k along an axis of `size` split in `blocks` equal
    blocks (LSTM gates are 4 blocks: each shard holds its slice of every gate)."""
    block = size // blocks
    piece = block // k
    return [(b * block + index * piece, b * block + (index + 1) * piece) for b in range(blocks)]


def shard_indices(size, k, index, blocks=1):
    """The indices along the axis that shard `index` of k holds, ascending."""
    return np.concatenate([np.arange(a, b) for a, b in shard_slices(size, k, index, blocks)])


def split_shard(full, axis, k, index, blocks=1):
    """Shard `index` of k of the numpy array `full` along `axis` (see `shard_slices`)."""
    full = np.asarray(full)
    return np.take(full, shard_indices(full.shape[axis], k, index, blocks), axis=axis)


def join_shards(pieces, axis, blocks=1):
    """The full array from the k shards `pieces` in shard order (inverse of `split_shard`)."""
    split = [np.split(np.asarray(p), blocks, axis=axis) for p in pieces]
    return np.concatenate([split[s][b] for b in range(blocks) for s in range(len(pieces))],
                          axis=axis)


def gather_shards(local, axis, k, blocks=1, name=None):
    """The full array on every rank of the model group from each rank's shard `local`
    (a collective over the model group; `local` itself when k == 1)."""
    local = np.asarray(local)
    if k == 1:
        return local.copy()
    group, hvd = _model_group(k)
    stacked = hvd.allgather(local[None], name=name, process_set=group.model_set).numpy()
    return join_shards(list(stacked.astype(local.dtype)), axis, blocks)


def check_divides(name, value, k, what="units"):
    """ValueError unless k divides `value` (the size of the axis that is sharded)."""
    if value % k:
        raise ValueError(f"{name}={value} must be divisible by model_parallel={k}: each of the "
                         f"{k} ranks holds {name}/{k} {what}; use a multiple of {k}, e.g. "
                         f"{math.ceil(value / k) * k}")


# ---- initial state -----------------------------------------------------------------------

def sharded_variable_ids(model):
    """ids of the model's variables that differ between the ranks of a model group: those
    its layers list in ``sharded_variables`` (`bwkeras.parallel.ShardedLayer`)."""
    ids = set()
    for layer in model._flatten_layers(include_self=False):
        ids.update(id(v) for v in getattr(layer, "sharded_variables", ()))
    return ids


def broadcast_variables(variables, sharded, prefix="bcast"):
    """Make every rank's `variables` agree with the model's single state, in place.

    A replicated variable (id not in `sharded`) first takes the value of its model group's
    first rank; then every variable takes the value of its data group's first rank, which
    holds the same shard in the first model group (rank 0's group). Afterwards replicated
    variables equal rank 0's everywhere and each shard equals the first replica's.
    """
    current = layout()
    hvd = runtime.horovod()
    if hvd is None:
        return
    import tensorflow as tf

    for i, var in enumerate(variables):
        value = tf.convert_to_tensor(var)
        if current.model_set is not None and id(var) not in sharded:
            value = hvd.broadcast(value, current.model_ranks[0], name=f"{prefix}.model.{i}",
                                  process_set=current.model_set)
        if current.data_set is not None:
            value = hvd.broadcast(value, current.data_ranks[0], name=f"{prefix}.data.{i}",
                                  process_set=current.data_set)
        var.assign(value)


def broadcast_model(model):
    """Make the copies of a (sharded) model one model, in place: replicated weights from
    rank 0, each shard from the first replica's rank holding it (`broadcast_variables`).
    A collective: call on every rank. ``fit`` with ``dist.callbacks()`` does it itself at
    the start of training; call it before predicting or saving a model no fit has synced.
    """
    broadcast_variables(list(model.variables), sharded_variable_ids(model), prefix="bcast.sync")
