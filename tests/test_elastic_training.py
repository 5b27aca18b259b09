"""Elastic training under horovodrun --min-np 1 --max-np 2 --host-discovery-script: a
worker killed in the middle of an epoch, training goes on with the other from the last
commit; every sample of the epoch with the change is trained exactly once (counted from
the ids the model itself saw); the learning rate follows the linear rule for one rank.

Two local "hosts" (localhost and 127.0.0.1, one slot each): Horovod blacklists the host of
a failed worker, so one name per worker keeps the other host in the job.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from launch import BASE_ENV, HAVE_HOROVODRUN, REPO

SCRIPT = Path(__file__).parent / "scripts" / "elastic_train.py"
N, EPOCHS = 240, 3
KILL_AT = 10          # the killed worker's 10th step (of 15 in epoch 1); commits every 4
# From the kill to the first step on the new world: Gloo's error on the closed connection
# (at once), the driver's check of the hosts (every second) and a new rendezvous; 60 s
# leaves room for a loaded machine.
RECOVERY_S = 60
GROW_AT = 6           # rank 0's 6th step alone (of 30 in epoch 1) makes room for a second

pytestmark = [pytest.mark.launcher, pytest.mark.skipif(not HAVE_HOROVODRUN, reason="no horovodrun")]


def job_env(out, **extra):
    env = dict(os.environ, **BASE_ENV, OUT_DIR=str(out), BWKERAS_STALL_SECONDS="0", **extra)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def elastic_run(tmp_path, np=2, discovery="echo localhost:1\necho 127.0.0.1:1\n", args=(KILL_AT,),
                timeout=420):
    """horovodrun -np `np` --min-np 1 --max-np 2 with `discovery` as the script's body."""
    script = tmp_path / "discover.sh"
    script.write_text("#!/bin/sh\n" + discovery)
    script.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    cmd = ["horovodrun", "-np", str(np), "--min-np", "1", "--max-np", "2",
           "--host-discovery-script", str(script), "--network-interface", "lo",
           sys.executable, str(SCRIPT), str(tmp_path), *map(str, args)]
    proc = subprocess.Popen(cmd, env=job_env(out), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        text, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, _ = proc.communicate()
        pytest.fail(f"elastic job did not finish within {timeout} s:\n{text[-6000:]}")
    assert proc.returncode == 0, f"exit {proc.returncode}\n{text[-6000:]}"
    return out, text


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 2-rank run, as one process: each step of horovodrun -np 2 trains
    rank r on samples r, r+2, ... of the world's next 16 and averages the two gradients,
    which is one process's step on those 16 at the same rate (0.01 x 2, the linear rule),
    up to round-off."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "out"
    out.mkdir()
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp), "0"], cwd=tmp, capture_output=True,
                          text=True, timeout=300, env=job_env(out, ELASTIC_BATCH="16", ELASTIC_LR="0.02"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "final.json").read_text())


def every_sample_once_per_epoch(final):
    """Data accounting, from the ids the model saw: every epoch trains every sample once."""
    for epoch in range(EPOCHS):
        ids = sorted(i for e, step in final["trained"] if e == epoch for i in step)
        assert ids == list(range(N)), (epoch, len(ids), len(set(ids)))


def close_to_uninterrupted(final, reference):
    """The final loss (MSE on all samples) within 2% of what training gained of the
    uninterrupted run's. The interrupted run trains every sample once per epoch at the same
    rate per sample (the linear rule), only grouped differently while the world was
    smaller (a third of one epoch of three), so it ends near the same loss, not at it;
    measured differences are under 0.02% of the gain (0.0024 of ~16), so 2% is room for
    other orders of round-off, not for a broken run (one that diverged or stopped)."""
    gain = final["loss0"] - reference["loss"]
    assert gain > 0
    assert abs(final["loss"] - reference["loss"]) <= 0.02 * gain, (final["loss"], reference["loss"], gain)


@pytest.mark.timeout(480)
def test_a_killed_worker_leaves_the_job_on_one_rank_and_every_sample_counts_once(tmp_path, reference):
    out, text = elastic_run(tmp_path)
    final = json.loads((out / "final.json").read_text())
    killed_at = float((tmp_path / "killed").read_text())
    assert final["size"] == 1
    # the world: 2 ranks from the start, 1 from the middle of epoch 1 on
    worlds = final["worlds"]
    assert worlds[0][:3] == [0, 0, 2], worlds
    changed = [w for w in worlds if w[2] == 1]
    assert changed and changed[0][0] == 0 and 0 < changed[0][1] < N, worlds
    assert changed[0][3] - killed_at < RECOVERY_S, (changed[0][3] - killed_at, worlds)
    every_sample_once_per_epoch(final)
    close_to_uninterrupted(final, reference)
    # the learning rate was re-scaled for one rank (linear rule: 0.01 x 1)
    assert final["lr"] == pytest.approx(0.01)
    assert (out / "rank0.json").exists()


@pytest.mark.timeout(480)
def test_a_worker_added_back_joins_at_a_commit_receives_the_state_and_the_job_ends_on_two(
        tmp_path, reference):
    grow = tmp_path / "grow"
    out, text = elastic_run(tmp_path, np=1, args=(0, GROW_AT),
                            discovery=f"echo localhost:1\n[ -e {grow} ] && echo 127.0.0.1:1\ntrue\n")
    final = json.loads((out / "final.json").read_text())
    grown_at = float(grow.read_text())
    assert final["size"] == 2
    worlds = final["worlds"]
    assert worlds[0][:3] == [0, 0, 1], worlds
    joined = [w for w in worlds if w[2] == 2]
    assert joined, worlds
    # it joined at a commit: the world trained a multiple of 4 steps of one sample-batch
    assert joined[0][1] % (4 * 8) == 0 or joined[0][1] == 0, worlds
    assert joined[0][3] - grown_at < RECOVERY_S, (joined[0][3] - grown_at, worlds)
    # the new worker received the state: both ranks end with the same weights
    digests = {json.loads((out / f"rank{r}.json").read_text())["digest"] for r in (0, 1)}
    assert len(digests) == 1
    every_sample_once_per_epoch(final)
    assert final["lr"] == pytest.approx(0.02)  # the linear rule for two ranks
    close_to_uninterrupted(final, reference)


@pytest.mark.cluster
@pytest.mark.one_stack  # the same machinery as above, which runs on both stacks
@pytest.mark.timeout(600)
def test_a_node_lost_in_the_cluster_in_a_box_leaves_the_job_on_the_other_two(box, tmp_path, reference):
    """horovodrun over ssh, one rank on each of node1..node3, --min-np 2: node3 loses every
    process (its namespace emptied, sshd included) in the middle of epoch 1; the job goes
    on with two ranks, on node1 and node2, and trains every sample once per epoch."""
    script = tmp_path / "discover.sh"
    script.write_text("#!/bin/sh\necho node1:1\necho node2:1\necho node3:1\n")
    script.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    env = job_env(out, ELASTIC_STEP_SLEEP="0.3")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    node1, node3 = box.node("node1"), box.node("node3")
    cmd = ["horovodrun", "-np", "3", "--min-np", "2", "--max-np", "3", "--host-discovery-script",
           str(script), sys.executable, str(SCRIPT), str(tmp_path), "0"]
    proc = node1.popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (tmp_path / "started").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                pytest.fail(f"training never started: {proc.communicate()[0][-6000:]}")
            time.sleep(0.1)
        lost_at = time.time()
        node3.kill()
        text, _ = proc.communicate(timeout=360)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, _ = proc.communicate()
        pytest.fail(f"the elastic job did not finish after node3 was lost:\n{text[-6000:]}")
    finally:
        box.revive(node3)
    assert proc.returncode == 0, text[-6000:]
    final = json.loads((out / "final.json").read_text())
    assert final["size"] == 2
    worlds = final["worlds"]
    assert worlds[0][:3] == [0, 0, 3], worlds
    shrunk = [w for w in worlds if w[2] == 2]
    assert shrunk and shrunk[0][3] - lost_at < RECOVERY_S, (lost_at, worlds)
    hosts = sorted(json.loads((out / f"rank{r}.json").read_text())["host"] for r in (0, 1))
    assert hosts == ["node1", "node2"]
    digests = {json.loads((out / f"rank{r}.json").read_text())["digest"] for r in (0, 1)}
    assert len(digests) == 1
    every_sample_once_per_epoch(final)
    assert final["lr"] == pytest.approx(0.02)  # the linear rule for two ranks
    close_to_uninterrupted(final, reference)
