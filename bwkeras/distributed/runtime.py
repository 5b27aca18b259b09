"""The one place that imports Horovod.

Every function works in a plain single process (no launcher, or Horovod not installed)
with size 1, so user code has one code path. Horovod is initialised only when a launcher
started more than one process: a lone process never pays for Horovod's background thread.
"""

import os

import numpy as np

from .. import _rank_env

# layout: the model-parallel `Layout` once `model_parallel.setup` ran (None: k = 1).
_STATE = {"initialised": False, "hvd": None, "hosts": None, "process_sets": {}, "layout": None}


def world_size_from_env():
    """World size announced by the launcher's environment, or None outside any launcher."""
    return _rank_env.world_size()


def _import_horovod(why=None):
    try:
        import horovod.tensorflow as hvd
    except ImportError as exc:  # pragma: no cover - exercised only without Horovod
        why = why or f"a launcher started {world_size_from_env()} processes"
        raise RuntimeError(
            f"{why} but Horovod cannot be imported ({exc}); run `make setup` to build it "
            "against this TensorFlow"
        ) from exc
    return hvd


def init(process_sets=None):
    """Initialise data-parallel training. Idempotent; returns the Horovod module or None.

    process_sets: rank lists (the same on every rank) that get a Horovod process set
    when Horovod starts here; `process_sets()` returns them. Model parallelism starts
    Horovod through `init_model_parallel(k)`, which passes the sets its layout needs.
    """
    if _STATE["initialised"]:
        return _STATE["hvd"]
    world = world_size_from_env()
    # An elastic job (horovodrun --min-np/--max-np) may start with one rank and grow: its
    # processes always join Horovod.
    elastic = os.environ.get("HOROVOD_ELASTIC") == "1"
    if elastic or (world is not None and world > 1):
        _rank_env.check_interfaces()
        hvd = _import_horovod()
        sets = [hvd.ProcessSet(list(ranks)) for ranks in process_sets or ()]
        hvd.init(process_sets=sets or None)
        _STATE["hvd"] = hvd
        _STATE["process_sets"] = {tuple(s.ranks): s for s in sets}
    _STATE["initialised"] = True
    _pin_gpu()
    return _STATE["hvd"]


def init_horovod(comm=None, process_sets=None):
    """Initialise Horovod itself, as ``horovod.tensorflow.init`` does: in a lone process
    too (size 1), and without touching ``tf.config``, so a script that pins its GPU by
    local rank afterwards still can. bwkeras.distributed then uses this Horovod.
    Returns the ``horovod.tensorflow`` module."""
    _rank_env.check_interfaces()
    hvd = _import_horovod("hvd.init() was called")
    hvd.init(comm=comm, process_sets=process_sets)
    _STATE.update(initialised=True, hvd=hvd)
    return hvd


def process_sets():
    """{tuple of ranks: Horovod process set} of the sets Horovod was started with (and
    those added since through `bwkeras.distributed.model_parallel`)."""
    return _STATE["process_sets"]


def hosts():
    """The host name of every rank, in rank order (this host alone in a single process).

    Gathered on first call, a collective: call it on every rank at the same point (the
    stall watchdog does when training begins); later calls return the same list without
    communicating, so a message about a lost rank can name its host while collectives hang.
    """
    import socket

    if _STATE["hosts"] is None:
        hvd = _hvd()
        here = socket.gethostname()
        _STATE["hosts"] = list(hvd.allgather_object(here, name="bwkeras.hosts")) if hvd else [here]
    return _STATE["hosts"]


def shutdown():
    """Shut Horovod down (if it runs); a later `init` / `init_horovod` starts afresh."""
    hvd = _STATE["hvd"]
    _STATE.update(initialised=False, hvd=None, hosts=None, process_sets={}, layout=None)
    if hvd is not None:
        hvd.shutdown()


def cpu_threads():
    """TF math threads per rank that bwkeras chose (None: left to TensorFlow or the user)."""
    return _rank_env.threads_applied()


def _hvd():
    return init()


def rank():
    hvd = _hvd()
    return hvd.rank() if hvd else 0


def size():
    hvd = _hvd()
    return hvd.size() if hvd else 1


def local_rank():
    hvd = _hvd()
    return hvd.local_rank() if hvd else 0


def local_size():
    hvd = _hvd()
    return hvd.local_size() if hvd else 1


def is_chief():
    """True on the one process that prints progress and writes files (rank 0)."""
    return rank() == 0


def fit_verbosity(level="auto"):
    """The `verbose=` to pass to `fit`: `level` on the chief, silent elsewhere."""
    return level if is_chief() else 0


def horovod(required=False):
    """The initialised ``horovod.tensorflow`` module, or None in a single process.

    required=True initialises Horovod even in a lone process (size 1), for the few
    features that only Horovod implements there (Keras 2 gradient accumulation).
    """
    hvd = _hvd()
    if hvd is None and required:
        hvd = _import_horovod()
        hvd.init()
        _STATE["hvd"] = hvd
    return hvd


def _pin_gpu():
    """One GPU per local rank, memory growth on; a no-op on machines without GPUs."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    for gpu in gpus:
        tf.config.experimental.set_memory_growth(gpu, True)
    tf.config.set_visible_devices(gpus[local_rank() % len(gpus)], "GPU")


# ---- collectives on host values (numpy in, numpy out) ---------------------------------

_OPS = ("sum", "average", "min", "max")


def allreduce(value, op="sum", name=None):
    """Reduce a number or numpy array over all ranks; identity in a single process."""
    if op not in _OPS:
        raise ValueError(f"allreduce op {op!r} is not one of {_OPS}")
    array = np.asarray(value)
    hvd = _hvd()
    if hvd is None:
        return array.copy()
    hvd_op = {"sum": hvd.Sum, "average": hvd.Average, "min": hvd.Min, "max": hvd.Max}[op]
    out = hvd.allreduce(array, op=hvd_op, name=name)
    return np.asarray(out.numpy(), dtype=array.dtype)


def allgather(value, name=None):
    """Concatenate each rank's array along axis 0, in rank order."""
    array = np.asarray(value)
    hvd = _hvd()
    if hvd is None:
        return array.copy()
    return np.asarray(hvd.allgather(array, name=name).numpy(), dtype=array.dtype)


def allgather_object(obj, name=None):
    """A list with every rank's picklable object, in rank order."""
    hvd = _hvd()
    if hvd is None:
        return [obj]
    return hvd.allgather_object(obj, name=name)


def broadcast(value, root_rank=0, name=None):
    """Rank `root_rank`'s array on every rank."""
    array = np.asarray(value)
    hvd = _hvd()
    if hvd is None:
        return array.copy()
    return np.asarray(hvd.broadcast(array, root_rank, name=name).numpy(), dtype=array.dtype)


def broadcast_variables(variables, root_rank=0, prefix="bcast"):
    """Overwrite `variables` (tf or Keras variables) with root_rank's values, in place."""
    hvd = _hvd()
    if hvd is None:
        return
    import tensorflow as tf

    # One eager broadcast per variable, named by position: ranks hold the same variables
    # in the same order, and this runs once per fit, not per step.
    for i, var in enumerate(variables):
        value = hvd.broadcast(tf.convert_to_tensor(var), root_rank, name=f"{prefix}.{i}")
        var.assign(value)


def broadcast_object(obj, root_rank=0, name=None):
    """Rank `root_rank`'s picklable object on every rank (`obj` itself in one process)."""
    hvd = _hvd()
    if hvd is None:
        return obj
    return hvd.broadcast_object(obj, root_rank=root_rank, name=name)


# The exception classes a peer's failure is re-raised as, by name (others: ValueError).
_ERRORS = {cls.__name__: cls for cls in (ValueError, TypeError, OSError, FileNotFoundError,
                                         FileExistsError, PermissionError, NotADirectoryError)}


def agree(error=None, name=None):
    """Raise on every rank if any rank failed: `error` is this rank's exception or None.

    Call it on every rank at the end of a phase that may fail on some ranks only (a bad
    shard, a folder that cannot be made): a rank that raised alone would leave its peers
    waiting in the next collective until a timeout, or for ever. The failing rank re-raises
    its own exception; the others raise ValueError / TypeError / OSError naming that rank.
    """
    hvd = _hvd()
    if hvd is None:
        if error is not None:
            raise error
        return
    report = None if error is None else (type(error).__name__, str(error))
    reports = hvd.allgather_object(report, name=name)
    if error is not None:
        raise error
    for r, rep in enumerate(reports):
        if rep is not None:
            kind = _ERRORS.get(rep[0], ValueError)
            raise kind(f"rank {r} of {len(reports)} failed: {rep[1]}")


def agreed(fn, *args, name=None, **kwargs):
    """fn(*args, **kwargs) on every rank, then `agree` on its ValueError / TypeError /
    OSError; returns fn's value."""
    value, error = None, None
    try:
        value = fn(*args, **kwargs)
    except (ValueError, TypeError, OSError) as exc:
        error = exc
    agree(error, name=name)
    return value


def barrier(name=None):
    """Return on each rank only once every rank has called it (a no-op in one process).

    Horovod's TensorFlow API has no barrier (``hvd.join`` is for uneven data, not this):
    an allreduce cannot complete before every rank has contributed, so one scalar
    allreduce is one.
    """
    hvd = _hvd()
    if hvd is not None:
        hvd.allreduce(np.zeros((), np.float32), op=hvd.Sum, name=name or "bwkeras.barrier")
