"""`bwkeras submit` through a real local Slurm: every launcher, and a preempted job that
checkpoints, is requeued and ends with the same weights as an uninterrupted one."""
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.launcher, pytest.mark.one_stack]
REPO = Path(__file__).parents[1]
TINY = str(REPO / "recipes" / "configs" / "mlp-tiny.yaml")


def submit(slurm, tmp_path, *extra):
    cmd = [sys.executable, "-m", "bwkeras.cli", "submit", "mlp", "--config", TINY,
           "--nodes", "1", "--tasks-per-node", "2", "--time", "00:10:00",
           "--runs-dir", str(tmp_path / "runs"), "--job-name", "x; rm -rf ~", *extra]
    env = dict(slurm.env, TF_CPP_MIN_LOG_LEVEL="2", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    job_id = re.search(r"submitted job (\d+); outputs in (\S+)", proc.stdout)
    assert job_id, proc.stdout
    return job_id.group(1), Path(job_id.group(2))


def job_log(run_dir):
    return "\n".join(p.read_text() for p in run_dir.glob("job-*.out"))


def final_weights(run_dir):
    import keras

    import bwkeras.models  # noqa: F401  (registers the model class for loading)

    return keras.models.load_model(run_dir / "model.keras").get_weights()


@pytest.mark.parametrize("launcher", ["srun", "horovodrun", "mpirun"])
def test_submit_runs_the_recipe_on_two_ranks(slurm, tmp_path, launcher):
    job, run_dir = submit(slurm, tmp_path, "--launcher", launcher)
    info = slurm.wait(job, timeout=240)
    assert info["JobState"] == "COMPLETED", f"{info}\n{job_log(run_dir)}\n{slurm.log()}"
    assert info["JobName"] == "x; rm -rf ~"  # an inert string, all of it
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["ranks"] == 2
    replicas = json.loads((run_dir / "replicas.json").read_text())
    assert replicas["ranks"] == 2 and replicas["agree"], replicas
    assert (run_dir / "job.sbatch").exists() and (run_dir / "report.md").exists()


def test_preempted_job_checkpoints_requeues_and_finishes_like_an_uninterrupted_one(slurm, tmp_path):
    # Deterministic data order (no shuffle) and enough epochs to be stopped part way.
    sets = ["--set", "train.epochs=12", "--set", "train.shuffle=false", "--set", "run.tensorboard=false"]
    (tmp_path / "a").mkdir()
    job, run_dir = submit(slurm, tmp_path / "a", "--requeue", "--launcher", "srun", *sets)
    # The warning Slurm sends before the time limit (--signal=B:USR1@S) is sent now, to the
    # batch shell, as soon as the first epoch has been checkpointed.
    deadline = time.monotonic() + 180
    while not (run_dir / "checkpoints" / "latest.json").exists():
        assert time.monotonic() < deadline, job_log(run_dir) + slurm.log()
        assert slurm.job(job).get("JobState") in ("PENDING", "RUNNING", "CONFIGURING"), job_log(run_dir)
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=USR1", "--batch", job], env=slurm.env, check=True)
    requeued = slurm.start_requeued_now(job)
    assert int(requeued.get("Restarts", 0)) == 1, (requeued, job_log(run_dir))
    info = slurm.wait(job, timeout=300)
    log = job_log(run_dir)
    assert info["JobState"] == "COMPLETED", f"{info}\n{log}\n{slurm.log()}"
    assert int(info.get("Restarts", 0)) == 1, info
    assert "requeueing job" in log and "stop signal received" in log
    stopped = json.loads((run_dir / "metrics.json").read_text())
    assert stopped["ranks"] == 2

    (tmp_path / "b").mkdir()
    job_b, run_b = submit(slurm, tmp_path / "b", "--launcher", "srun", *sets)
    assert slurm.wait(job_b, timeout=240)["JobState"] == "COMPLETED", job_log(run_b)
    # Same computation in the same order, resumed from an exact checkpoint of weights and
    # optimizer state: equal to float32 round-off (1e-6; observed identical).
    for a, b in zip(final_weights(run_dir), final_weights(run_b)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
