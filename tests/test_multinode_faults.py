"""Faults on the cluster in a box, each ended cleanly within a bound: a rank frozen with
SIGSTOP, a node's link pulled mid-training (then --resume gives the uninterrupted run's
weights), a node that dies under Slurm.

The stall limit is lowered to STALL seconds here (default 120): a fault must end the job
within STALL + the first-step grace is not at stake (training already ran an epoch), so
the bound asserted is STALL + BOUND_SLACK, the slack covering the watchdog's 1 s poll and
the launcher's teardown of the other ranks on a busy 2-core machine.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from launch import communicate_or_fail
from test_multinode import PY, TINY, job_env

pytestmark = [pytest.mark.launcher, pytest.mark.cluster, pytest.mark.one_stack]
STALL = 15
BOUND_SLACK = 45
LONG = [sys.executable, PY[1], "65", "8", "100000", "none", "1"]   # runs until stopped


def start(node, cmd, cwd, env):
    return node.popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                      text=True, start_new_session=True)


def wait_for(path_fn, proc, timeout=180):
    deadline = time.monotonic() + timeout
    while not path_fn():
        if proc.poll() is not None:
            pytest.fail(f"the job ended before the fault: {proc.stdout.read()[-4000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"training never started within {timeout} s: {proc.stdout.read()[-4000:]}")
        time.sleep(0.2)


def finish(proc, timeout):
    """(exit status, seconds until it ended, output); kills the job if it outlives `timeout`."""
    started = time.monotonic()
    out, _ = communicate_or_fail(proc, timeout, f"the job still ran {timeout} s after the fault (a hang)")
    return proc.returncode, time.monotonic() - started, out


def env_for(tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    env = dict(job_env(tmp_path / "out"), BWKERAS_STALL_SECONDS=str(STALL), PID_DIR=str(pids))
    (tmp_path / "out").mkdir()
    return env, pids


LAUNCH = {
    "mpirun": ["mpirun", "-np", "2", "-H", "node1,node2", "--bind-to", "none",
               *[a for v in ("PATH", "PYTHONPATH", "OUT_DIR", "PID_DIR", "BWKERAS_STALL_SECONDS",
                             "TF_CPP_MIN_LOG_LEVEL", "TF_NUM_INTRAOP_THREADS",
                             "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS") for a in ("-x", v)]],
    "horovodrun": ["horovodrun", "--gloo", "-np", "2", "-H", "node1:1,node2:1"],
}


@pytest.mark.parametrize("launcher", ["mpirun", "horovodrun"])
def test_a_frozen_rank_ends_the_job_with_a_message(box, tmp_path, launcher):
    env, pids = env_for(tmp_path)
    proc = start(box.node("node1"), LAUNCH[launcher] + LONG, tmp_path, env)
    wait_for(lambda: (pids / "rank1.pid").exists() and (pids / "rank0.pid").exists(), proc)
    pid, host = (pids / "rank1.pid").read_text().split()
    assert host == "node2"
    os.kill(int(pid), signal.SIGSTOP)   # alive but silent
    try:
        status, seconds, out = finish(proc, timeout=STALL + 120)
    finally:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert status != 0, out[-3000:]
    assert seconds < STALL + BOUND_SLACK, (seconds, out[-3000:])
    assert "rank 0 on node1 made no training progress" in out, out[-3000:]
    assert "rank 1 on node2" in out


def recipe(run_dir, epochs):
    return [sys.executable, "recipes/mlp.py", "--config", TINY, "--set", f"train.epochs={epochs}",
            "--set", "train.shuffle=false", "--run-dir", str(run_dir)]


def final_weights(run_dir):
    import keras

    import bwkeras.models  # noqa: F401  (registers the model class for loading)

    return keras.models.load_model(Path(run_dir) / "model.keras").get_weights()


def test_a_pulled_link_ends_the_job_and_resume_gives_the_uninterrupted_weights(box, tmp_path):
    node1, node2 = box.node("node1"), box.node("node2")
    env, _ = env_for(tmp_path)
    repo = Path(PY[1]).parents[2]
    run_a, run_b, epochs = tmp_path / "a", tmp_path / "b", 12
    hvd = LAUNCH["horovodrun"]
    proc = start(node1, hvd + recipe(run_a, epochs), repo, env)
    latest = run_a / "checkpoints" / "latest.json"
    wait_for(latest.exists, proc)
    node2.link_down()
    try:
        status, seconds, out = finish(proc, timeout=STALL + 150)
    finally:
        node2.link_up()
    assert status != 0, out[-3000:]
    # Gloo's own 30 s receive timeout or the watchdog, whichever comes first.
    assert seconds < max(STALL, 30) + BOUND_SLACK, (seconds, out[-3000:])
    assert not (run_a / "model.keras").exists(), "the run cannot have finished"
    index = json.loads(latest.read_text())  # intact: written atomically at an epoch end
    assert 1 <= index["epoch"] < epochs, index
    box.wait_ssh()

    resumed = start(node1, hvd + recipe(run_a, epochs), repo, env)
    status, _, out = finish(resumed, timeout=240)
    assert status == 0, out[-4000:]
    # It went on from the checkpoint: every epoch is in the history once.
    history = (run_a / "history.csv").read_text().splitlines()
    assert len(history) == 1 + epochs, history
    whole = start(node1, hvd + recipe(run_b, epochs), repo, env)
    status, _, out = finish(whole, timeout=240)
    assert status == 0, out[-4000:]
    replicas = json.loads((run_a / "replicas.json").read_text())
    assert replicas["agree"] and replicas["hosts"] == ["node1", "node2"], replicas
    # The same steps in the same order from an exact checkpoint (weights and optimizer
    # state): equal to float32 round-off.
    for a, b in zip(final_weights(run_a), final_weights(run_b)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_a_dead_node_is_marked_down_and_its_job_requeued(box, box_slurm, tmp_path):
    node2 = box.node("node2")
    env, pids = env_for(tmp_path)
    env["SLURM_CONF"] = str(box_slurm.conf)
    script = tmp_path / "job.sbatch"
    script.write_text("#!/bin/bash\n#SBATCH --nodes=2\n#SBATCH --ntasks-per-node=1\n#SBATCH --requeue\n"
                      f"#SBATCH --output={tmp_path}/job-%j.out\n#SBATCH --time=00:10:00\n"
                      "if [ \"${SLURM_RESTART_COUNT:-0}\" -ge 1 ]; then echo requeued-and-ran; exit 0; fi\n"
                      f"srun --mpi=pmix {' '.join(LONG)}\n")
    sub = subprocess.run(["sbatch", "--parsable", str(script)], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    deadline = time.monotonic() + 180
    while not (pids / "rank1.pid").exists():
        assert time.monotonic() < deadline, box_slurm.job(job)
        time.sleep(0.3)
    node2.kill()   # every process of the node, slurmd included
    killed = time.monotonic()
    # SlurmdTimeout=10 in the box: the controller marks the node down, then requeues the job.
    box_slurm.wait_states({"node2": ("down",)}, timeout=120)
    info = box_slurm.start_requeued_now(job, timeout=120)
    assert int(info.get("Restarts", 0)) >= 1, info
    assert time.monotonic() - killed < 150
    # Node back: the requeued job runs again on both nodes and completes.
    box.revive(node2)
    box_slurm.wait_states({"node2": ("idle", "mixed", "allocated")}, timeout=120)
    info = box_slurm.wait(job, timeout=240)
    log = "\n".join(p.read_text() for p in tmp_path.glob("job-*.out"))
    assert info["JobState"] == "COMPLETED" and "requeued-and-ran" in log, (info, log)


def submit_until_epochs(cmd, env, box_slurm, tmp_path, epochs):
    """Run the `bwkeras submit` command `cmd`; (job id, run folder) once its history.csv
    has `epochs` rows (the fault comes after training has checkpointed)."""
    import re

    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job, run_dir = re.search(r"submitted job (\d+); outputs in (\S+)", proc.stdout).groups()
    history = Path(run_dir) / "history.csv"
    deadline = time.monotonic() + 240
    while not (history.exists() and len(history.read_text().splitlines()) > epochs):
        assert time.monotonic() < deadline, f"{box_slurm.job(job)}\n{box_slurm.log()}"
        assert box_slurm.job(job).get("JobState") in ("PENDING", "RUNNING", "CONFIGURING"), box_slurm.job(job)
        time.sleep(0.2)
    return job, Path(run_dir)


def lose_node3_until_the_job_ends(box, box_slurm, job, run_dir):
    """Kill every process of node3 (sshd and slurmd too), wait for `job` to end, bring the
    node back; (the job's final info, its output)."""
    node3 = box.node("node3")
    node3.kill()
    try:
        info = box_slurm.wait(job, timeout=400)
    finally:
        box.revive(node3)
        box_slurm.wait_states({"node3": ("idle", "mixed", "allocated")}, timeout=120)
    return info, "\n".join(p.read_text() for p in run_dir.glob("job-*.out"))


def test_min_nodes_relaunches_on_the_nodes_left_from_the_checkpoint(box, box_slurm, tmp_path):
    """`bwkeras submit --nodes 3 --min-nodes 2` (srun, MPI): node3 dies after the first
    checkpoints; the batch script finds the nodes that still answer, relaunches on node1
    and node2 from the last checkpoint, and the run completes; attempts.log has both."""
    import csv

    epochs = 40
    runs = tmp_path / "runs"
    env = dict(job_env(tmp_path), SLURM_CONF=str(box_slurm.conf), BWKERAS_STALL_SECONDS=str(STALL))
    cmd = [sys.executable, "-m", "bwkeras.cli", "submit", "mlp", "--config", TINY, "--nodes", "3",
           "--min-nodes", "2", "--tasks-per-node", "1", "--time", "00:10:00", "--runs-dir", str(runs),
           "--launcher", "srun", "--set", f"train.epochs={epochs}", "--set", "run.tensorboard=false"]
    job, run_dir = submit_until_epochs(cmd, env, box_slurm, tmp_path, epochs=2)
    history = run_dir / "history.csv"
    info, log = lose_node3_until_the_job_ends(box, box_slurm, job, run_dir)
    attempts = (run_dir / "attempts.log").read_text()
    assert info["JobState"] == "COMPLETED", f"{info}\n{attempts}\n{log[-4000:]}"
    assert "attempt 1 on 3 nodes (node1,node2,node3)" in attempts, attempts
    assert "attempt 2 on 2 nodes (node1,node2)" in attempts, attempts
    # the relaunch trains at the rate train.lr_rule gives two ranks, not three
    assert "the checkpoint was trained on 3 ranks, this run has 2" in log, log[-4000:]
    with open(history, newline="") as fh:
        epochs_done = [int(r["epoch"]) for r in csv.DictReader(fh)]
    assert epochs_done == list(range(1, epochs + 1)), epochs_done
    replicas = json.loads((run_dir / "replicas.json").read_text())
    assert replicas["ranks"] == 2 and replicas["hosts"] == ["node1", "node2"] and replicas["agree"], replicas


def test_submit_elastic_goes_on_without_a_lost_node_and_records_the_change(box, box_slurm, tmp_path):
    """`bwkeras submit --elastic --nodes 3 --min-nodes 2` (horovodrun with Gloo inside the
    allocation, hosts from the allocation's nodes that answer over ssh): node3 dies in
    the middle of the run; the same launch goes on with node1 and node2 from the last
    commit (no relaunch), and history.csv and world.json record 3 ranks, then 2."""
    import csv

    epochs = 30
    runs = tmp_path / "runs"
    env = dict(job_env(tmp_path), SLURM_CONF=str(box_slurm.conf))
    cmd = [sys.executable, "-m", "bwkeras.cli", "submit", "mlp", "--config", TINY, "--nodes", "3",
           "--min-nodes", "2", "--elastic", "--time", "00:10:00", "--runs-dir", str(runs),
           "--set", f"train.epochs={epochs}", "--set", "run.tensorboard=false"]
    job, run_dir = submit_until_epochs(cmd, env, box_slurm, tmp_path, epochs=2)
    history = run_dir / "history.csv"
    info, log = lose_node3_until_the_job_ends(box, box_slurm, job, run_dir)
    assert info["JobState"] == "COMPLETED", f"{info}\n{log[-6000:]}"
    with open(history, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1)), rows
    ranks = [int(float(r["ranks"])) for r in rows]
    assert ranks[0] == 3 and ranks[-1] == 2 and ranks == sorted(ranks, reverse=True), ranks
    worlds = json.loads((run_dir / "world.json").read_text())
    assert [w["ranks"] for w in worlds] == [3, 2], worlds
    replicas = json.loads((run_dir / "replicas.json").read_text())
    # After the reset Horovod numbers the survivors afresh (node2 may become rank 0): the
    # hosts in rank order are the two that are left, in either order.
    assert replicas["ranks"] == 2 and sorted(replicas["hosts"]) == ["node1", "node2"] and replicas["agree"], replicas
