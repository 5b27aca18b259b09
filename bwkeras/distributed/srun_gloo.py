"""Gloo under `srun`: data-parallel training on a Slurm cluster without MPI and without ssh.

horovodrun needs ssh between nodes and mpirun needs MPI; a cluster may offer neither, only
Slurm. Here srun starts every rank, and this wrapper, run once in the batch script, plays
horovodrun's remaining part: it starts Horovod's own rendezvous server with the plan of
which rank runs where, then runs srun with the server's address in the environment.
Each rank, on ``import bwkeras``, turns Slurm's task variables into Horovod's
(``bwkeras._rank_env.apply_gloo_under_srun``) and picks the network interface that
reaches the server.

    python -m bwkeras.distributed.srun_gloo --ntasks 4 --ntasks-per-node 2 -- python train.py

The exit status is srun's.
"""
import argparse
import os
import subprocess
import sys

from .. import _network


def allocation_hosts():
    """The allocation's node names in Slurm's order (`scontrol show hostnames`)."""
    nodelist = os.environ.get("SLURM_JOB_NODELIST") or os.environ.get("SLURM_NODELIST")
    if not nodelist:
        raise SystemExit("srun_gloo: not inside a Slurm allocation (SLURM_JOB_NODELIST is not set)")
    out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                         text=True, check=True, timeout=60)
    return out.stdout.split()


def plan(hosts, ntasks, per_node):
    """Horovod's slot plan for `ntasks` ranks, `per_node` on each host in order: the block
    distribution srun uses (ranks 0..per_node-1 on the first node, ...)."""
    from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts

    nodes = -(-ntasks // per_node)
    if nodes > len(hosts):
        raise SystemExit(f"srun_gloo: {ntasks} tasks at {per_node} per node need {nodes} nodes; "
                         f"the allocation has {len(hosts)} ({','.join(hosts)})")
    spec = ",".join(f"{h}:{per_node}" for h in hosts[:nodes])
    return get_host_assignments(parse_hosts(spec), ntasks)


def server_address(hosts):
    """This host's address as the other nodes reach it."""
    me = os.environ.get("SLURMD_NODENAME") or hosts[0]
    others = [h for h in hosts if h != me]
    return _network.source_address(others[0] if others else me) or "127.0.0.1"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bwkeras.distributed.srun_gloo",
                                     description="Run COMMAND on every task of srun, wired with Gloo.")
    parser.add_argument("--ntasks", "-n", type=int, default=None,
                        help="ranks (default: $SLURM_NTASKS)")
    parser.add_argument("--ntasks-per-node", type=int, default=None,
                        help="ranks per node (default: $SLURM_NTASKS_PER_NODE, else 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (put it after --)")
    ntasks = args.ntasks or int(os.environ.get("SLURM_NTASKS", "1"))
    per_node = args.ntasks_per_node or int((os.environ.get("SLURM_NTASKS_PER_NODE") or "1").split("(")[0])
    if ntasks < 1 or per_node < 1:
        parser.error(f"--ntasks and --ntasks-per-node must be >= 1, got {ntasks} and {per_node}")

    from horovod.runner.http.http_server import RendezvousServer

    hosts = allocation_hosts()
    slots = plan(hosts, ntasks, per_node)
    server = RendezvousServer()
    port = server.start()
    server.init(slots)
    env = dict(os.environ,
               HOROVOD_GLOO_RENDEZVOUS_ADDR=server_address(hosts),
               HOROVOD_GLOO_RENDEZVOUS_PORT=str(port),
               HOROVOD_CONTROLLER="gloo", HOROVOD_CPU_OPERATIONS="gloo",
               BWKERAS_SRUN_GLOO="1")
    srun = ["srun", f"--ntasks={ntasks}", f"--ntasks-per-node={per_node}",
            "--distribution=block", "--kill-on-bad-exit=1", *command]
    try:
        status = subprocess.call(srun, env=env)
    finally:
        server.stop()
    return status


if __name__ == "__main__":
    sys.exit(main())
