"""A recipe run elastic with one switch: `bwkeras run mlp --elastic -np 2` (horovodrun
--min-np 1 --max-np 2 with a discovery script for this machine), a worker killed once the
first epochs are recorded; the run goes on with one rank and finishes, history.csv counts
the ranks of every epoch, world.json and the report state the change of world. Also the
switch's bad input: exit 2 and a message, before anything starts."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bwkeras.cli import elastic_hosts
from launch import BASE_ENV, HAVE_HOROVODRUN, REPO

TINY = str(Path(REPO) / "recipes" / "configs" / "mlp-tiny.yaml")


def cli_env():
    env = dict(os.environ, **BASE_ENV, BWKERAS_STALL_SECONDS="0")
    env["PYTHONPATH"] = os.pathsep.join([REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


def workers_on(host, ancestor):
    """pids of the mlp recipe's processes horovodrun started for `host` under the
    process `ancestor` (the test's own job: other tests may run the same recipe).
    psutil comes with Horovod, which its runner needs."""
    import psutil

    found = []
    for proc in psutil.Process(ancestor).children(recursive=True):
        try:
            if (proc.environ().get("HOROVOD_HOSTNAME") == host
                    and any(a.endswith("recipes/mlp.py") for a in proc.cmdline())):
                found.append(proc.pid)
        except psutil.Error:   # gone meanwhile
            continue
    return found


@pytest.mark.one_stack  # the elastic machinery itself runs on both (test_elastic_training)
@pytest.mark.launcher
@pytest.mark.skipif(not HAVE_HOROVODRUN, reason="no horovodrun")
@pytest.mark.timeout(400)
def test_a_recipe_run_elastic_loses_a_worker_and_finishes_on_one(tmp_path):
    epochs = 12
    cmd = [sys.executable, "-m", "bwkeras.cli", "run", "mlp", "--elastic", "-np", "2",
           "--config", TINY, "--set", f"train.epochs={epochs}", "--set", "train.commit_steps=5",
           "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    killed, deadline = [], time.monotonic() + 300
    try:
        while proc.poll() is None and not killed and time.monotonic() < deadline:
            rows = list((tmp_path / "runs").glob("*/history.csv"))
            if rows and len(rows[0].read_text().splitlines()) >= 3:  # two epochs recorded
                killed = workers_on("127.0.0.1", proc.pid)
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        text, _ = proc.communicate(timeout=max(10, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        text, _ = proc.communicate()
        pytest.fail(f"the elastic run did not finish:\n{text[-6000:]}")
    assert killed, f"no worker on 127.0.0.1 to kill before the run ended:\n{text[-3000:]}"
    assert proc.returncode == 0, text[-6000:]
    run_dir, = (tmp_path / "runs").iterdir()
    with open(run_dir / "history.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    ranks = [int(float(r["ranks"])) for r in rows]
    assert ranks[:2] == [2, 2] and ranks[-1] == 1 and ranks == sorted(ranks, reverse=True), ranks
    worlds = json.loads((run_dir / "world.json").read_text())
    assert [(w["from"], w["ranks"]) for w in worlds] == [(None, 2), (2, 1)], worlds
    assert worlds[1]["epoch"] == ranks.index(1) + 1, worlds  # the epoch it went on in
    report = (run_dir / "report.md").read_text()
    assert "## Changes of world" in report and "from 2 to 1 ranks" in report
    assert json.loads((run_dir / "metrics.json").read_text())  # the run's results were written


@pytest.mark.one_stack
@pytest.mark.parametrize("args, message", [
    (["mlp", "--min-np", "1"], "--min-np and --max-np need --elastic"),
    (["mlp", "--elastic", "-np", "2", "--min-np", "3"], "--elastic needs 1 <= --min-np <= -np <= --max-np"),
    (["mlp", "--elastic", "-np", "2", "--max-np", "1"], "got --min-np 1, -np 2, --max-np 1"),
    (["gradient_descent", "--elastic", "-np", "2"], "the gradient_descent recipe trains without"),
    (["least_squares", "--set", "train.elastic=true"], "cannot train elastically"),
])
def test_bad_elastic_arguments_exit_2_before_anything_starts(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "-m", "bwkeras.cli", "run", *args, "--runs-dir",
                           str(tmp_path / "runs")], cwd=tmp_path, env=cli_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.one_stack
def test_the_discovery_script_splits_the_slots_over_two_names_of_this_machine():
    # a failed worker takes only its name's slots with it (Horovod drops the whole host)
    assert elastic_hosts(1) == ["localhost:1"]
    assert elastic_hosts(2) == ["localhost:1", "127.0.0.1:1"]
    assert elastic_hosts(5) == ["localhost:3", "127.0.0.1:2"]
