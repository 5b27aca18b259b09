"""The one place that imports Horovod.

Every function works in a plain single process (no launcher, or Horovod not installed)
with size 1, so user code has one code path. Horovod is initialised only when a launcher
started more than one process: a lone process never pays for Horovod's background thread.
"""
import os

import numpy as np

_STATE = {"initialised": False, "hvd": None}

# Environment variables by which launchers announce the world size; the first one set wins.
_WORLD_SIZE_VARS = (
    "HOROVOD_SIZE",          # horovodrun (Gloo)
    "OMPI_COMM_WORLD_SIZE",  # Open MPI mpirun
    "PMI_SIZE",              # MPICH / Slurm srun --mpi=pmi2 / Cray aprun
    "PMIX_SIZE",
    "SLURM_NTASKS",          # srun without an MPI plugin still sets this per step
)


def launcher_world_size():
    """World size announced by the launcher's environment, or None outside any launcher."""
    for var in _WORLD_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            if var == "SLURM_NTASKS" and "SLURM_STEP_ID" not in os.environ:
                continue  # inside an sbatch script but not in an srun step
            return int(value)
    return None


def _import_horovod():
    try:
        import horovod.tensorflow as hvd
    except ImportError as exc:  # pragma: no cover - exercised only without Horovod
        raise RuntimeError(
            f"a launcher started {launcher_world_size()} processes but Horovod cannot be "
            f"imported ({exc}); run `make setup` to build it against this TensorFlow"
        ) from exc
    return hvd


def init():
    """Initialise data-parallel training. Idempotent; returns the Horovod module or None."""
    if _STATE["initialised"]:
        return _STATE["hvd"]
    world = launcher_world_size()
    if world is not None and world > 1:
        hvd = _import_horovod()
        _mpi_defaults()
        hvd.init()
        _STATE["hvd"] = hvd
        _share_cores(hvd.local_size())
    _STATE["initialised"] = True
    _pin_gpu()
    return _STATE["hvd"]


def _mpi_defaults():
    """Make a waiting Open MPI rank yield its core instead of spinning on it.

    Horovod's background thread meets the other ranks every cycle (1 ms), and Open MPI
    busy-polls until they arrive. With one rank per core, the waiting rank's spin steals the
    core that the rank's own math (or a neighbour's) needs: on 2 cores it cut np=2 throughput
    by about 40% (docs/performance.md). Yielding costs microseconds per message. Read by
    MPI_Init, so it must be set before hvd.init(); an explicit setting (environment or
    `mpirun --mca`) wins.
    """
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")


def _share_cores(local_size):
    """Give each of the `local_size` ranks on this node its share of the cores for TF's math.

    TensorFlow sizes its thread pools to every core of the machine, so k ranks per node
    would each start that many threads and oversubscribe the node k times. The share is
    $OMP_NUM_THREADS when the launcher or batch script sets it (cpus-per-task), else the
    cores this process may run on divided among the local ranks. Left alone when the user
    already chose, or when TensorFlow has already started (the pools are fixed then).
    """
    import tensorflow as tf

    threading = tf.config.threading
    if (threading.get_intra_op_parallelism_threads() or threading.get_inter_op_parallelism_threads()
            or os.environ.get("TF_NUM_INTRAOP_THREADS") or os.environ.get("TF_NUM_INTEROP_THREADS")):
        return
    omp = os.environ.get("OMP_NUM_THREADS", "")
    allowed = len(os.sched_getaffinity(0))
    if omp.isdigit() and int(omp) > 0:
        share = int(omp)
    elif allowed < (os.cpu_count() or allowed):
        share = allowed  # the launcher bound this rank to its own cores already
    else:
        share = max(allowed // max(local_size, 1), 1)
    try:
        threading.set_intra_op_parallelism_threads(share)
        threading.set_inter_op_parallelism_threads(share)
    except RuntimeError:  # TF context already initialised: its pools can no longer change
        return
    _STATE["threads"] = share


def cpu_threads():
    """TF math threads per rank chosen by init() (None when left to TensorFlow or the user)."""
    init()
    return _STATE.get("threads")


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


def barrier():
    hvd = _hvd()
    if hvd is not None:
        hvd.join()
