"""Batch scripts rendered from one JobSpec: validation, quoting, and real shells."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bwkeras.batch import JobSpec, parse_time, render, write_script


def spec(**kw):
    base = dict(command=[sys.executable, "-c", "print('hi')"], nodes=1, tasks_per_node=2, time="00:10:00")
    base.update(kw)
    return JobSpec(**base)


@pytest.mark.parametrize("kw, match", [
    (dict(scheduler="lsf"), "unknown scheduler 'lsf'.*slurm.*pbs"),
    (dict(launcher="aprun"), "unknown launcher 'aprun' for slurm"),
    (dict(scheduler="pbs", launcher="srun"), "unknown launcher 'srun' for pbs"),
    (dict(nodes=0), "nodes must be an integer >= 1, got 0"),
    (dict(tasks_per_node=-1), "tasks_per_node must be an integer >= 1, got -1"),
    (dict(time="1 hour"), "time limit '1 hour' is not HH:MM:SS"),
    (dict(time="00:61:00"), "'00:61:00' is not HH:MM:SS"),
    (dict(time="00:00:00"), "longer than zero"),
    (dict(job_name="a\nb"), "job_name must be a one-line"),
    (dict(account="x\n#SBATCH --qos=high"), "account must be a one-line"),
    (dict(env={"1BAD": "x"}), "'1BAD' is not a valid name"),
    (dict(nodes=2, min_nodes=3), r"min_nodes must be an integer in \[1, 2\] \(nodes\), got 3"),
    (dict(nodes=2, min_nodes=0), r"min_nodes must be an integer in \[1, 2\]"),
    (dict(nodes=2, min_nodes=1, launcher="horovodrun"), "min_nodes retries srun launches on slurm, not horovodrun"),
    (dict(elastic=True, launcher="srun"), "elastic jobs are launched by horovodrun .Gloo., not 'srun'"),
    (dict(elastic=True, scheduler="pbs"), "elastic jobs run under Slurm .*not pbs"),
    (dict(elastic=True, nodes=2, min_nodes=3), r"min_nodes must be an integer in \[1, 2\]"),
    (dict(model_parallel=0), "model_parallel must be an integer >= 1, got 0"),
    (dict(nodes=2, tasks_per_node=2, model_parallel=3),
     r"model_parallel 3 must divide the number of tasks, 4 \(nodes 2 x tasks_per_node 2\)"),
    (dict(nodes=2, tasks_per_node=1, model_parallel=2, elastic=True), "cannot run elastically"),
    (dict(nodes=2, tasks_per_node=1, model_parallel=2, min_nodes=1),
     "model_parallel must divide tasks_per_node 1"),
])
def test_bad_descriptions_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        spec(**kw)


def test_parse_time():
    assert parse_time("01:02:03") == 3723
    assert parse_time("2-00:00:01") == 2 * 86400 + 1


@pytest.mark.parametrize("scheduler, launcher, min_nodes, elastic", [
    ("slurm", "srun", None, False), ("slurm", "horovodrun", None, False), ("slurm", "mpirun", None, False),
    ("pbs", "aprun", None, False), ("pbs", "mpirun", None, False),
    ("slurm", "srun", 1, False), ("pbs", "aprun", 1, False), ("pbs", "mpirun", 1, False),
    ("slurm", None, None, True), ("slurm", "horovodrun", 1, True)])
def test_every_variant_is_valid_bash(tmp_path, scheduler, launcher, min_nodes, elastic):
    s = spec(scheduler=scheduler, launcher=launcher, job_name="x; rm -rf ~", account="acc 1",
             partition="p$USER", env={"A": "it's"}, nodes=2, min_nodes=min_nodes, elastic=elastic)
    path = write_script(s, tmp_path)
    assert os.access(path, os.X_OK)
    proc = subprocess.run(["bash", "-n", path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = Path(path).read_text()
    assert text.startswith("#!/bin/bash\n")
    # User values sit quoted inside directives; no line of the body starts with them.
    assert '"x; rm -rf ~"' in text
    assert not any(line.startswith("rm -rf") for line in text.splitlines())
    assert "export A='it'\"'\"'s'" in text


def test_slurm_script_holds_resources_and_launch_line():
    text = render(spec(nodes=2, tasks_per_node=4, account="abc", partition="gpu", requeue=True,
                       signal_seconds=90))
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", '#SBATCH --account="abc"',
                 '#SBATCH --partition="gpu"', "#SBATCH --time=00:10:00", "#SBATCH --requeue",
                 "#SBATCH --signal=B:USR1@90"):
        assert line in text.splitlines()
    assert "srun --mpi=pmix --ntasks=8 --ntasks-per-node=4 --kill-on-bad-exit=1 " in text
    hvd = render(spec(nodes=2, tasks_per_node=4, launcher="horovodrun"))
    assert "scontrol show hostnames" in hvd and 'horovodrun --gloo -np 8 -H "$HOSTS"' in hvd


def test_pbs_script_is_blue_waters_style():
    text = render(spec(scheduler="pbs", nodes=3, tasks_per_node=1, cpus_per_task=16, time="02:00:00",
                       account="bacc", partition="normal"))
    lines = text.splitlines()
    for line in ("#PBS -l nodes=3:ppn=16", "#PBS -l walltime=02:00:00", '#PBS -A "bacc"', '#PBS -q "normal"',
                 "export MPICH_MAX_THREAD_SAFETY=multiple"):
        assert line in lines
    assert any(line.startswith("aprun -n 3 -N 1 -d 16 -cc none -b ") for line in lines)


@pytest.mark.launcher
@pytest.mark.one_stack
def test_pbs_aprun_script_runs_end_to_end_with_a_stand_in_aprun(tmp_path):
    """No PBS server or ALPS here: run the rendered script with bash, PBS's variables set as
    PBS sets them, and tests/slurm/aprun (which maps -n/-N/-d onto a local mpirun) on PATH."""
    import json
    import shutil

    if shutil.which("mpirun") is None:
        pytest.skip("mpirun not on PATH")
    out = tmp_path / "out"
    out.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    report = ("import json, os; from bwkeras import distributed as d; d.init(); "
              "open(os.path.join(os.environ['OUT_DIR'], f'rank{d.rank()}.json'), 'w').write("
              "json.dumps({'size': d.size(), 'cwd': os.getcwd(), 'threads': os.environ['OMP_NUM_THREADS'], "
              "'mpich': os.environ['MPICH_MAX_THREAD_SAFETY']}))")
    s = spec(scheduler="pbs", command=[sys.executable, "-c", report], nodes=1, tasks_per_node=2,
             workdir="work", job_name="bw; echo pwned", env={"OUT_DIR": str(out)})
    path = write_script(s, tmp_path)
    env = dict(os.environ, PATH=f"{Path(__file__).parent / 'slurm'}:{os.environ['PATH']}",
               PBS_O_WORKDIR=str(tmp_path), PBS_JOBID="123.bw", PBS_JOBNAME="bw",
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(["bash", path], cwd="/", env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "aprun stand-in: 2 ranks, 2 per node, depth 1, MPICH_MAX_THREAD_SAFETY=multiple" in proc.stdout
    assert "pwned" not in proc.stdout
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    for r in ranks:
        assert r == {"size": 2, "cwd": str(work), "threads": "1", "mpich": "multiple"}


def test_an_elastic_script_discovers_the_nodes_that_answer(tmp_path):
    """The rendered --elastic script with stand-ins for scontrol (the allocation: node1..
    node3), ssh (node2 does not answer) and horovodrun (runs the discovery script it is
    given, twice: once before and once after node2 answers again)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_ins = {
        "scontrol": 'echo node1; echo node2; echo node3',
        "ssh": f'for a; do [ "$a" = true ] && break; prev=$a; done\n'
               f'[ "$prev" = node2 ] && [ ! -e {tmp_path}/node2-back ] && exit 255; exit 0',
        "horovodrun": f'echo "args: $*"; while [ "$1" != --host-discovery-script ]; do shift; done\n'
                      f'echo "first: $("$2" | sort | paste -sd, -)"; touch {tmp_path}/node2-back\n'
                      f'echo "then: $("$2" | sort | paste -sd, -)"',
    }
    for name, body in stand_ins.items():
        (bin_dir / name).write_text("#!/bin/bash\n" + body + "\n")
        (bin_dir / name).chmod(0o755)
    s = spec(nodes=3, tasks_per_node=2, min_nodes=2, elastic=True, workdir=str(tmp_path))
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SLURM_JOB_ID="7",
               SLURM_JOB_NODELIST="node[1-3]", TMPDIR=str(tmp_path))
    proc = subprocess.run(["bash", write_script(s, tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "args: --gloo -np 6 --min-np 4 --max-np 6 --host-discovery-script" in proc.stdout
    assert "first: node1:2,node3:2\n" in proc.stdout and "then: node1:2,node2:2,node3:2\n" in proc.stdout
    assert not (tmp_path / "bwkeras-discover-7.sh").exists()    # removed after the job


@pytest.mark.parametrize("name", ["srun_pmix.sbatch", "horovodrun_gloo.sbatch", "bluewaters_aprun.pbs"])
def test_example_batch_scripts_parse_and_hard_code_no_account(name):
    path = Path(__file__).parents[1] / "slurm" / name
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    directives = [l for l in path.read_text().splitlines() if l.startswith(("#SBATCH", "#PBS"))]
    assert directives and not any(k in l for l in directives for k in ("--account", "--partition", " -A ", " -q "))


FAKE_APRUN = """#!/bin/sh
# fails like a job that lost a node while it runs on more than $GOOD_RANKS ranks
echo "aprun $*" >> "$CALLS"
[ "$2" -le "$GOOD_RANKS" ]
"""


@pytest.mark.parametrize("good, expect_status, expect_tries", [(2, 0, [3, 2]), (0, 1, [3, 2])])
def test_pbs_min_nodes_relaunches_on_ever_fewer_nodes_and_logs_each_attempt(tmp_path, good, expect_status,
                                                                          expect_tries):
    """The tutorial's loop, rendered: 3 nodes, --min-nodes 2; an aprun that fails on more
    than `good` ranks. Each attempt is logged; the job ends with the first success, or
    fails with a message once 2 nodes failed too."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "aprun").write_text(FAKE_APRUN)
    (bindir / "aprun").chmod(0o755)
    log = tmp_path / "attempts.log"
    s = spec(scheduler="pbs", nodes=3, tasks_per_node=1, min_nodes=2, workdir=str(tmp_path),
             env={"BWKERAS_ATTEMPTS_LOG": str(log)})
    path = write_script(s, tmp_path)
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PBS_O_WORKDIR=str(tmp_path),
               GOOD_RANKS=str(good), CALLS=str(tmp_path / "calls"))
    proc = subprocess.run(["bash", path], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == expect_status, proc.stdout + proc.stderr
    tries = [int(line.split()[2]) for line in (tmp_path / "calls").read_text().splitlines()]
    assert tries == expect_tries
    text = log.read_text()
    assert [f"attempt on {n} nodes" in text for n in expect_tries] == [True] * len(expect_tries)
    assert ("every attempt down to --min-nodes 2 failed; stopping" in text) == (expect_status != 0)


@pytest.mark.parametrize("scheduler", ["slurm", "pbs"])
def test_model_parallel_jobs_say_their_groups(scheduler):
    text = render(spec(scheduler=scheduler, nodes=2, tasks_per_node=2, model_parallel=2,
                       min_nodes=1 if scheduler == "pbs" else None))
    assert "# Model parallel: the 4 ranks form 2 model group(s) of 2 ranks" in text
    assert "Model parallel" not in render(spec(scheduler=scheduler, model_parallel=1))
