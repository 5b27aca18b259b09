"""What the launcher tells a process through its environment, and the per-rank defaults
that follow from it. Imported by ``import bwkeras``, so it must stay free of TensorFlow
and Horovod: its settings take effect only if made before either starts.
"""
import os
import re

# Environment variables by which launchers announce the world size; the first one set wins.
WORLD_SIZE_VARS = (
    "HOROVOD_SIZE",          # horovodrun (Gloo)
    "OMPI_COMM_WORLD_SIZE",  # Open MPI mpirun
    "PMI_SIZE",              # MPICH / Slurm srun --mpi=pmi2 / Cray aprun
    "PMIX_SIZE",
    "SLURM_NTASKS",          # srun without an MPI plugin still sets this per step
)
# ... and the number of ranks on this node.
LOCAL_SIZE_VARS = ("HOROVOD_LOCAL_SIZE", "OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "PALS_LOCAL_SIZE")

_STATE = {"threads": None}


def world_size():
    """World size announced by the launcher's environment, or None outside any launcher."""
    for var in WORLD_SIZE_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            if var == "SLURM_NTASKS" and "SLURM_STEP_ID" not in os.environ:
                continue  # inside an sbatch script but not in an srun step
            return int(value)
    return None


def local_size():
    """Ranks on this node per the launcher, or None when it does not say."""
    for var in LOCAL_SIZE_VARS:
        value = os.environ.get(var, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    # Slurm: SLURM_STEP_TASKS_PER_NODE="2(x3),1" lists the tasks of each node of the step.
    per_node = os.environ.get("SLURM_STEP_TASKS_PER_NODE", "")
    node = os.environ.get("SLURM_NODEID", "")
    if per_node and node.isdigit():
        counts = []
        for count, repeat in re.findall(r"(\d+)(?:\(x(\d+)\))?", per_node):
            counts += [int(count)] * int(repeat or 1)
        if int(node) < len(counts):
            return counts[int(node)]
    return None


def thread_share():
    """TF math threads for one rank: $OMP_NUM_THREADS when set (a batch script's
    cpus-per-task), else the cores the launcher bound this rank to, else the node's cores
    divided among its ranks; None when none of these is known."""
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        return int(omp)
    allowed = len(os.sched_getaffinity(0))
    if allowed < (os.cpu_count() or allowed):
        return allowed  # bound by the launcher already
    ranks = local_size()
    return max(allowed // ranks, 1) if ranks else None


def apply_rank_defaults():
    """Under a launcher with more than one rank, set (never override) the defaults that
    let ranks share a node (docs/performance.md measures each):

    * TF_NUM_INTRAOP_THREADS / TF_NUM_INTEROP_THREADS = this rank's share of the cores.
      TensorFlow sizes both pools to every core of the node, so k ranks per node would
      oversubscribe it k times. TensorFlow reads them when it first runs an op, so setting
      them at import works whatever the user creates before calling bwkeras.distributed.
    * OMPI_MCA_mpi_yield_when_idle=1. Horovod's background thread meets the other ranks
      every 1 ms cycle and Open MPI busy-polls until they arrive, spinning on a core that
      the rank's math needs; read by MPI_Init, so it must be set before Horovod starts.
    Returns the thread share applied, or None.
    """
    world = world_size()
    if world is None or world < 2:
        return None
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    if os.environ.get("TF_NUM_INTRAOP_THREADS") or os.environ.get("TF_NUM_INTEROP_THREADS"):
        return None  # the user chose
    share = thread_share()
    if share is not None:
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(share)
        _STATE["threads"] = share
    return share


def threads_applied():
    """The share apply_rank_defaults() set, or None (left to TensorFlow or the user)."""
    return _STATE["threads"]
