"""Run a Python script under a real multi-process launcher, with a hard timeout."""
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HAVE_HOROVODRUN = shutil.which("horovodrun") is not None
HAVE_MPIRUN = shutil.which("mpirun") is not None

# Quiet TensorFlow's C++ logging and keep one math thread per rank: two ranks share 2 cores.
BASE_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
}


def communicate_or_fail(proc, timeout, message):
    """proc.communicate() with a hard limit: a job that outlives `timeout` has its whole
    process group (started with start_new_session) killed, and the test fails with
    `message` and the tail of the output, so a hang never stalls the suite."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{message}:\n{(out or '')[-4000:]}\n{(err or '')[-4000:]}")


def launcher_command(launcher, np):
    if launcher == "horovodrun":
        return ["horovodrun", "-np", str(np), "--gloo", "-H", f"localhost:{np}"]
    if launcher == "mpirun":
        return ["mpirun", "-np", str(np), "--oversubscribe", "--bind-to", "none",
                "-x", "PYTHONPATH", "-x", "TF_CPP_MIN_LOG_LEVEL", "-x", "OUT_DIR"]
    if launcher == "none":
        return []
    raise ValueError(f"unknown launcher {launcher!r}")


def run_script(tmp_path, code, np=2, launcher="horovodrun", timeout=180, env=None, args=()):
    """Write `code` to a file and run it under `launcher` with `np` ranks (see `run_file`)."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(code))
    return run_file(tmp_path, script, np=np, launcher=launcher, timeout=timeout, env=env, args=args)


def run_file(tmp_path, script, np=2, launcher="horovodrun", timeout=180, env=None, args=()):
    """Run the Python file `script` under `launcher` ("horovodrun", "mpirun" or "none").

    The script finds its output folder in $OUT_DIR; `read_outputs` collects the per-rank
    JSON files it wrote there. A run past `timeout` seconds is killed with its whole
    process group and fails the test: a hang can never stall the suite.
    """
    if launcher == "horovodrun" and not HAVE_HOROVODRUN:
        pytest.skip("horovodrun not on PATH")
    if launcher == "mpirun" and not HAVE_MPIRUN:
        pytest.skip("mpirun not on PATH")
    out_dir = tmp_path / "out"
    out_dir.mkdir(exist_ok=True)
    full_env = dict(os.environ, **BASE_ENV, OUT_DIR=str(out_dir))
    full_env["PYTHONPATH"] = os.pathsep.join(
        [REPO] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else [])
    )
    full_env.update(env or {})
    cmd = launcher_command(launcher, np) + [sys.executable, str(script), *map(str, args)]
    proc = subprocess.Popen(cmd, env=full_env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    started = time.monotonic()
    stdout, stderr = communicate_or_fail(proc, timeout, f"{' '.join(cmd)} did not finish within {timeout} s")
    result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    result.out_dir = out_dir
    result.seconds = time.monotonic() - started
    return result


def check(proc):
    """Fail with the job's own output when it exited non-zero."""
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
    )
    return proc


def read_outputs(proc, np):
    """The per-rank JSON documents rank{r}.json that the job wrote to $OUT_DIR."""
    outs = []
    for r in range(np):
        path = proc.out_dir / f"rank{r}.json"
        assert path.exists(), f"rank {r} wrote no {path.name}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        outs.append(json.loads(path.read_text()))
    return outs
