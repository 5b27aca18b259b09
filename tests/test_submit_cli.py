"""`bwkeras submit` on bad input: a clear message, exit 2, nothing written or submitted."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Stack-independent: the submit command's arguments and scripts.
pytestmark = pytest.mark.one_stack

REPO = Path(__file__).parents[1]
TINY = str(REPO / "recipes" / "configs" / "mlp-tiny.yaml")


def bwkeras(tmp_path, *args, path=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "bwkeras.cli", *args, "--runs-dir", str(tmp_path / "runs")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "unknown recipe 'nosuch'; available recipes: least_squares, gradient_descent, capacity"),
    (["mlp", "--scheduler", "lsf"], "unknown scheduler 'lsf'"),
    (["mlp", "--launcher", "aprun"], "unknown launcher 'aprun' for slurm"),
    (["mlp", "--nodes", "0"], "nodes must be an integer >= 1, got 0"),
    (["mlp", "--tasks-per-node", "-2"], "tasks_per_node must be an integer >= 1, got -2"),
    (["mlp", "--time", "90 minutes"], "time limit '90 minutes' is not HH:MM:SS"),
    (["mlp", "--set", "train.epochz=3"], "unknown config key 'train.epochz'; valid keys are: train.epochs"),
    (["mlp", "--nodes", "2", "--tasks-per-node", "3", "--model-parallel", "4"],
     "model_parallel 4 must divide the number of tasks, 6 (nodes 2 x tasks_per_node 3)"),
    (["mlp", "--model-parallel", "0"], "model_parallel must be an integer >= 1, got 0"),
    (["sunspots", "--nodes", "2", "--set", "model.model_parallel=4"],
     "model_parallel 4 must divide the number of tasks, 2 (nodes 2 x tasks_per_node 1)"),
    (["mlp", "--nodes", "4", "--model-parallel", "4", "--set", "model.hidden_units=[6]"],
     "model.hidden_units[0]=6 must be divisible by model.model_parallel=4"),
    (["least_squares", "--nodes", "2", "--model-parallel", "2"],
     "the least_squares recipe has no model.model_parallel; recipes that do: mlp, sunspots"),
    (["mlp", "--nodes", "2", "--model-parallel", "2", "--elastic"], "cannot run elastically"),
])
def test_bad_input_exits_2_and_submits_nothing(tmp_path, args, message):
    proc = bwkeras(tmp_path, "submit", *args, "--dry-run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_missing_sbatch_is_an_error_before_anything_is_written(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    proc = bwkeras(tmp_path, "submit", "mlp", "--config", TINY, path=str(empty))
    assert proc.returncode == 2
    assert "sbatch is not on PATH" in proc.stderr
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_dry_run_writes_a_pbs_script_in_a_new_run_folder(tmp_path):
    proc = bwkeras(tmp_path, "submit", "mlp", "--scheduler", "pbs", "--nodes", "2",
                   "--tasks-per-node", "1", "--cpus-per-task", "16", "--time", "02:00:00",
                   "--account", "bw; rm -rf ~", "--config", TINY, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    script = (run_dir / "job.pbs").read_text()
    assert '#PBS -A "bw; rm -rf ~"' in script
    assert "aprun -n 2 -N 1 -d 16 -cc none -b " in script
    assert f"--run-dir {run_dir}" in script and "mlp-tiny.yaml" in script
    assert subprocess.run(["bash", "-n", str(run_dir / "job.pbs")]).returncode == 0


def test_a_refused_submission_leaves_no_run_folder(tmp_path):
    # An sbatch that refuses every job, as a scheduler does for a bad account.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: Invalid account' >&2\nexit 1\n")
    (fake / "sbatch").chmod(0o755)
    proc = bwkeras(tmp_path, "submit", "mlp", "--config", TINY, "--account", "nope",
                   path=f"{fake}:/usr/bin:/bin")
    assert proc.returncode == 2
    assert "sbatch refused the job (exit 1): sbatch: error: Invalid account" in proc.stderr
    assert not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("scheduler, launch", [("slurm", "srun --mpi=pmix --ntasks=4"),
                                               ("pbs", "aprun -n 4 -N 2")])
def test_dry_run_passes_model_parallel_to_the_recipe(tmp_path, scheduler, launch):
    proc = bwkeras(tmp_path, "submit", "sunspots", "--scheduler", scheduler, "--nodes", "2",
                   "--tasks-per-node", "2", "--model-parallel", "2", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    script = (run_dir / ("job.sbatch" if scheduler == "slurm" else "job.pbs")).read_text()
    (line,) = [ln for ln in script.splitlines() if launch in ln]
    assert "--set model.model_parallel=2" in line and f"--run-dir {run_dir}" in line
    assert "2 model group(s) of 2 ranks" in script
    assert subprocess.run(["bash", "-n", str(run_dir / script_name(scheduler))]).returncode == 0


def script_name(scheduler):
    return "job.sbatch" if scheduler == "slurm" else "job.pbs"
