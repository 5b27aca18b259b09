"""What the launcher tells a process through its environment, and the per-rank defaults
that follow from it. Imported by ``import bwkeras``, so it must stay free of TensorFlow
and Horovod: its settings take effect only if made before either starts.
"""
import os
import re

from . import _network

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


def apply_gloo_under_srun():
    """A task that srun started for bwkeras.distributed.srun_gloo: Horovod's rank
    variables from Slurm's, as horovodrun would set them (srun places tasks in blocks, the
    order of the wrapper's slot plan). Never overrides a HOROVOD_RANK already set."""
    env = os.environ
    if env.get("BWKERAS_SRUN_GLOO") != "1" or "HOROVOD_RANK" in env or "SLURM_PROCID" not in env:
        return False
    env["HOROVOD_RANK"] = env["SLURM_PROCID"]
    env["HOROVOD_SIZE"] = env.get("SLURM_STEP_NUM_TASKS") or env["SLURM_NTASKS"]
    env["HOROVOD_LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
    env["HOROVOD_LOCAL_SIZE"] = str(local_size() or 1)
    env["HOROVOD_CROSS_RANK"] = env.get("SLURM_NODEID", "0")
    env["HOROVOD_CROSS_SIZE"] = env.get("SLURM_STEP_NUM_NODES") or env.get("SLURM_NNODES", "1")
    env["HOROVOD_HOSTNAME"] = env.get("SLURMD_NODENAME") or env.get("HOSTNAME", "localhost")
    return True


def launcher_address():
    """The address of the host that runs the launcher (or Gloo's rendezvous), when the
    environment says; the route to it tells which interface reaches the other nodes."""
    env = os.environ
    if env.get("HOROVOD_GLOO_RENDEZVOUS_ADDR"):
        return env["HOROVOD_GLOO_RENDEZVOUS_ADDR"]
    # Open MPI's contact URI: "JOBID;tcp://10.0.0.1,192.168.0.1:PORT"
    match = re.search(r"tcp://([0-9.]+)", env.get("OMPI_MCA_orte_hnp_uri", ""))
    if match:
        return match.group(1)
    return env.get("SLURM_LAUNCH_NODE_IPADDR") or None


def apply_network_defaults():
    """The interface Gloo and Open MPI use between nodes, when the user named none: the one
    the route to the launcher's host leaves from (a node has loopback and one or more real
    interfaces; Gloo binds to one interface, and a wrong one hangs or fails late).

    * HOROVOD_GLOO_IFACE for Gloo (horovodrun sets it itself; srun_gloo does not);
    * OMPI_MCA_btl_tcp_if_include for Open MPI's TCP transport, if not loopback.
    Returns the dict of what was set.
    """
    env = os.environ
    host = launcher_address()
    if host is None:
        return {}
    iface = _network.interface_to(host)
    if iface is None:
        return {}
    applied = {}
    if env.get("HOROVOD_CONTROLLER") == "gloo" and not env.get("HOROVOD_GLOO_IFACE"):
        applied["HOROVOD_GLOO_IFACE"] = iface
    mpi = "OMPI_COMM_WORLD_SIZE" in env or ("SLURM_STEP_ID" in env and "PMIX_RANK" in env)
    if (mpi and not _network.is_loopback(iface) and not env.get("OMPI_MCA_btl_tcp_if_include")
            and not env.get("OMPI_MCA_btl_tcp_if_exclude")):
        applied["OMPI_MCA_btl_tcp_if_include"] = iface
    env.update(applied)
    return applied


def check_interfaces():
    """ValueError naming an interface the user set that this host does not have: Gloo
    would otherwise fail deep inside its rendezvous, Open MPI hang."""
    for var in ("HOROVOD_GLOO_IFACE", "OMPI_MCA_btl_tcp_if_include"):
        value = os.environ.get(var, "")
        unknown = _network.unknown_interfaces(value) if value else []
        if unknown:
            raise ValueError(f"{var}={value!r} names {', '.join(map(repr, unknown))}, which this host "
                             f"({os.uname().nodename}) does not have; its interfaces are "
                             f"{', '.join(_network.interfaces())}")


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
    * the srun_gloo rank variables and the network interface (apply_gloo_under_srun,
      apply_network_defaults).
    Returns the thread share applied, or None.
    """
    apply_gloo_under_srun()
    world = world_size()
    if world is None or world < 2:
        return None
    os.environ.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")
    apply_network_defaults()
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
