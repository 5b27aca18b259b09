"""Multi-node training across the cluster in a box (tests/cluster.py): two hosts with their
own hostnames and addresses on a real (virtual) link, every launcher a cluster user meets.

Each launch trains the small model of tests/scripts/train_small.py on node1 and node2 and
must give what the single-host tests give: the weights of one process with the doubled
batch, bit-equal on both ranks, each rank on its own host.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from launch import BASE_ENV, REPO, check, read_outputs, run_file

pytestmark = [pytest.mark.launcher, pytest.mark.cluster]
SCRIPT = Path(__file__).parent / "scripts" / "train_small.py"
ARGS = ["65", "8", "3", "none", "1"]   # as test_distributed_training: 65 samples, batch 8 per rank
TINY = str(Path(REPO) / "recipes" / "configs" / "mlp-tiny.yaml")


def flat(weights):
    return np.concatenate([np.ravel(np.asarray(w, dtype=np.float64)) for w in weights])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process on this machine, batch 16: what two ranks of batch 8 must reproduce."""
    proc = check(run_file(tmp_path_factory.mktemp("np1"), SCRIPT, np=1, launcher="none",
                          args=["64", "16", "3", "none", "1"]))
    (out,) = read_outputs(proc, 1)
    return out


def job_env(out_dir):
    env = dict(os.environ, **BASE_ENV, OUT_DIR=str(out_dir))
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env["PYTHONPATH"] = str(REPO)
    return env


def run_on(node, cmd, tmp_path, timeout=240, env=None):
    """`cmd` on `node` of the box with a hard timeout (the whole process group is killed)."""
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    proc = node.popen(cmd, cwd=tmp_path, env=env or job_env(out_dir), stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{cmd} did not finish within {timeout} s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    result.out_dir = out_dir
    return result


def check_across_nodes(proc, reference, hosts=("node1", "node2")):
    ranks = read_outputs(check(proc), len(hosts))
    assert [r["host"] for r in ranks] == list(hosts), [r["host"] for r in ranks]
    assert [r["size"] for r in ranks] == [len(hosts)] * len(hosts)
    np.testing.assert_array_equal(flat(ranks[0]["weights"]), flat(ranks[1]["weights"]))
    # float32 sums in another order: a few ulps per step, far below 1e-5 after 12 steps
    # (the tolerance of the single-host equivalence test).
    np.testing.assert_allclose(flat(ranks[0]["weights"]), flat(reference["weights"]), rtol=0, atol=1e-5)
    assert np.abs(flat(reference["weights"]) - flat(reference["initial"])).max() > 1e-2
    return ranks


PY = [sys.executable, str(SCRIPT), *ARGS]
MPI_X = ["-x", "PATH", "-x", "PYTHONPATH", "-x", "OUT_DIR", "-x", "TF_CPP_MIN_LOG_LEVEL",
         "-x", "TF_NUM_INTRAOP_THREADS", "-x", "TF_NUM_INTEROP_THREADS", "-x", "OMP_NUM_THREADS"]


# Across hosts the keras2 stack runs the Gloo case (Horovod's own Keras 2 wrapper over a
# real link); the MPI one is launcher mechanics, the same on either stack.
@pytest.mark.parametrize("how", ["gloo", pytest.param("mpi", marks=pytest.mark.one_stack)])
def test_horovodrun_over_ssh(box, tmp_path, reference, how):
    node1 = box.node("node1")
    proc = run_on(node1, ["horovodrun", f"--{how}", "-np", "2", "-H", "node1:1,node2:1", *PY], tmp_path)
    check_across_nodes(proc, reference)


@pytest.mark.one_stack
def test_mpirun_over_ssh(box, tmp_path, reference):
    node1 = box.node("node1")
    proc = run_on(node1, ["mpirun", "-np", "2", "-H", "node1,node2", "--bind-to", "none", *MPI_X, *PY],
                  tmp_path)
    ranks = check_across_nodes(proc, reference)
    # The interface toward the other node was chosen for Open MPI's TCP transport.
    assert all(r["btl_tcp_if_include"] == "eth0" for r in ranks), ranks


def _sbatch(slurm, tmp_path, body, timeout=240):
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n"
                      f"#SBATCH --output={tmp_path}/job-%j.out\n#SBATCH --time=00:10:00\n{body}\n")
    env = dict(job_env(out_dir), **slurm.env)
    env["SLURM_CONF"] = str(slurm.conf)
    proc = subprocess.run(["sbatch", "--parsable", str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    job = proc.stdout.strip().split(";")[0]
    info = slurm.wait(job, timeout=timeout)
    log = "\n".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    result = subprocess.CompletedProcess(script, 0 if info["JobState"] == "COMPLETED" else 1, log,
                                         f"{info}\n{slurm.log()}")
    result.out_dir = out_dir
    return result, info


@pytest.mark.one_stack
def test_srun_pmix_across_two_nodes(box_slurm, tmp_path, reference):
    cmd = " ".join(PY)
    proc, info = _sbatch(box_slurm, tmp_path, f"srun --mpi=pmix {cmd}")
    assert info["NodeList"] == "node[1-2]", info
    check_across_nodes(proc, reference)


@pytest.mark.one_stack
def test_gloo_under_srun_without_mpi_or_ssh(box_slurm, tmp_path, reference):
    cmd = " ".join(PY)
    proc, _ = _sbatch(box_slurm, tmp_path,
                      f"{sys.executable} -m bwkeras.distributed.srun_gloo --ntasks 2 --ntasks-per-node 1 -- {cmd}")
    ranks = check_across_nodes(proc, reference)
    # No ssh and no MPI in the path: Gloo on the interface that reaches the rendezvous.
    assert [r["controller"] for r in ranks] == ["gloo", "gloo"]
    assert [r["gloo_iface"] for r in ranks] == ["eth0", "eth0"]


@pytest.mark.one_stack
@pytest.mark.parametrize("launcher", ["srun", "srun-gloo", "horovodrun", "mpirun"])
def test_submit_two_nodes(box_slurm, tmp_path, launcher):
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "bwkeras.cli", "submit", "mlp", "--config", TINY, "--nodes", "2",
           "--tasks-per-node", "1", "--time", "00:10:00", "--runs-dir", str(runs),
           "--launcher", launcher, "--set", "run.tensorboard=false"]
    env = dict(job_env(tmp_path), SLURM_CONF=str(box_slurm.conf))
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job, run_dir = re.search(r"submitted job (\d+); outputs in (\S+)", proc.stdout).groups()
    info = box_slurm.wait(job, timeout=300)
    log = "\n".join(p.read_text() for p in Path(run_dir).glob("job-*.out"))
    assert info["JobState"] == "COMPLETED", f"{info}\n{log}\n{box_slurm.log()}"
    replicas = json.loads((Path(run_dir) / "replicas.json").read_text())
    assert replicas["ranks"] == 2 and replicas["agree"], replicas
    assert replicas["hosts"] == ["node1", "node2"], replicas


@pytest.mark.one_stack
def test_a_wrong_interface_is_named(box, tmp_path):
    node1 = box.node("node1")
    proc = run_on(node1, ["mpirun", "-np", "2", "-H", "node1,node2", "--bind-to", "none", *MPI_X,
                          "-x", "OMPI_MCA_btl_tcp_if_include=eth9", *PY], tmp_path, timeout=120)
    assert proc.returncode != 0
    assert "OMPI_MCA_btl_tcp_if_include='eth9' names 'eth9', which this host" in proc.stdout + proc.stderr


@pytest.mark.one_stack
def test_pbs_aprun_script_places_ranks_on_the_nodes_of_its_node_file(box, tmp_path, reference):
    """A Blue Waters-style PBS script (aprun -n 2 -N 1) with the stand-in aprun: PBS's node
    file lists node1 and node2, so ALPS' placement puts one rank on each."""
    from bwkeras.batch import JobSpec, write_script

    out = tmp_path / "out"
    out.mkdir()
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("node1\nnode2\n")
    spec = JobSpec(command=PY, scheduler="pbs", nodes=2, tasks_per_node=1, workdir=str(tmp_path),
                   env={"OUT_DIR": str(out)})
    script = write_script(spec, tmp_path)
    env = dict(job_env(out), PBS_O_WORKDIR=str(tmp_path), PBS_NODEFILE=str(nodefile), PBS_JOBID="1.bw")
    env["PATH"] = f"{Path(__file__).parent / 'slurm'}:{env['PATH']}"
    proc = run_on(box.node("node1"), ["bash", script], tmp_path, env=env)
    assert "aprun stand-in: 2 ranks, 1 per node on 2 nodes (node1:1,node2:1)" in proc.stdout, proc.stdout + proc.stderr
    check_across_nodes(proc, reference)


@pytest.mark.one_stack
def test_three_nodes_train_like_one_process(box, tmp_path_factory, tmp_path):
    if len(box.nodes) < 3:
        pytest.skip("the box has fewer than 3 nodes (BWKERAS_CLUSTER_NODES)")
    # 72 samples: 24 per rank, 3 steps of 8 per epoch; one process takes the same 72 in 3
    # steps of 24 (strided shards make global step k cover samples 24k..24k+23).
    proc1 = check(run_file(tmp_path_factory.mktemp("np1x3"), SCRIPT, np=1, launcher="none",
                           args=["72", "24", "3", "none", "1"]))
    (reference,) = read_outputs(proc1, 1)
    proc = run_on(box.node("node1"), ["horovodrun", "--gloo", "-np", "3", "-H", "node1:1,node2:1,node3:1",
                                      sys.executable, str(SCRIPT), "72", "8", "3", "none", "1"], tmp_path)
    ranks = check_across_nodes(proc, reference, hosts=("node1", "node2", "node3"))
    np.testing.assert_array_equal(flat(ranks[0]["weights"]), flat(ranks[2]["weights"]))
