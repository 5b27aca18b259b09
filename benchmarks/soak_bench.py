"""Soak: many short 2-rank trainings under each launcher, each with a random fault.

    python -m benchmarks soak [--seed N] [--count N] [--quick]

Runs only when named (not in CI). Launchers, 2 ranks on this host: horovodrun --gloo,
horovodrun --mpi, mpirun, and srun inside a single-node Slurm started for the run
(tests/slurm_cluster.py) when Slurm is installed and this is root. Each trial trains
benchmarks/soak_worker.py (6 epochs x 20 steps, a checkpoint per epoch) and injects one
fault at a random step after the first checkpoint:

  kill       SIGKILL to one rank, sent by this controller;
  stop       SIGSTOP to one rank (alive but silent: the frozen case), sent by this controller;
  exception  one rank raises RuntimeError in a callback (the worker's test-only hook
             SOAK_RAISE: the one fault that cannot come from outside);
  disk_full  the run folder lies on its own 32 MiB tmpfs; at the step this controller
             fills it, so the chief's next write (history.csv, the checkpoint) fails
             with ENOSPC. A real full file system, as a full scratch quota would be.

The controller learns each rank's pid and global step from the progress file the worker
writes after every batch. The stall limit is lowered to STALL seconds (default 120) so
that frozen-rank trials end in seconds. Per trial it records:

- hang: the job outlived HANG_TIMEOUT seconds after the fault (then killed). Goal 0.
- fault_to_exit_s: from the fault until the launcher has exited and no rank process is
  left (a rank left behind stopped counts until it is found and is reported).
- checkpoint_intact: the newest checkpoint latest.json names verifies against its recorded
  SHA-256 (`bwkeras.checkpoints.latest` without a CheckpointWarning). Goal: all.
- resumed_equal: `--resume` under the same launcher finishes and its final weights equal
  the uninterrupted run's (same seed, same launcher) within ATOL. The resumed run repeats
  the same float32 steps in the same order from an exact checkpoint (weights and Adam
  state), and a sum of two ranks' gradients is the same in either order, so they are
  expected bit-equal; ATOL = 1e-6 leaves room for round-off only, far below the
  0.05-or-so weight change a single step of this training makes. Goal: all.

Random choices (launcher order, fault, rank, step) come from --seed (default 0): the same
seed gives the same schedule. --count trials in all, spread evenly over the launchers,
each launcher cycling through the four faults in a shuffled order.
"""
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
REPO = HERE.parent
WORKER = str(HERE / "soak_worker.py")
FAULTS = ("kill", "stop", "exception", "disk_full")
EPOCHS, STEPS = 6, 20
STALL = 10
HANG_TIMEOUT = 120          # after the fault; a job still running then is a hang
START_TIMEOUT = 240         # from the start until the fault step
RESUME_TIMEOUT = 240
ATOL = 1e-6
TMPFS_MB = 32
DEFAULT_COUNT = 24


def _tests():
    sys.path.insert(0, str(REPO / "tests"))
    import launch  # tests/launch.py: the launcher lines and environment the tests use

    return launch


def launchers(slurm=None):
    """name -> argv prefix for 2 ranks on this host."""
    launch = _tests()
    mpi_x = [a for v in ("PATH", "SOAK_PROGRESS_DIR", "SOAK_RAISE", "SOAK_EPOCHS", "SOAK_STEPS",
                         "BWKERAS_STALL_SECONDS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS",
                         "OMP_NUM_THREADS") for a in ("-x", v)]
    out = {}
    if launch.HAVE_HOROVODRUN:
        out["horovodrun-gloo"] = launch.launcher_command("horovodrun", 2)
        out["horovodrun-mpi"] = ["horovodrun", "-np", "2", "--mpi", "-H", "localhost:2"]
    if launch.HAVE_MPIRUN:
        out["mpirun"] = launch.launcher_command("mpirun", 2) + mpi_x
    if slurm is not None:
        # as bwkeras renders it: --kill-on-bad-exit ends the step when one rank fails
        out["srun"] = ["srun", "--mpi=pmix", "--ntasks=2", "--kill-on-bad-exit=1"]
    return out


def job_env(progress, slurm=None, extra=None):
    launch = _tests()
    env = dict(os.environ, **launch.BASE_ENV, SOAK_PROGRESS_DIR=str(progress),
               SOAK_EPOCHS=str(EPOCHS), SOAK_STEPS=str(STEPS), BWKERAS_STALL_SECONDS=str(STALL))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("SOAK_RAISE", None)
    if slurm is not None:
        env["SLURM_CONF"] = str(slurm.conf)
    env.update(extra or {})
    return env


def start(prefix, run_dir, env, resume=False, log=None):
    cmd = prefix + [sys.executable, WORKER, str(run_dir)] + (["--resume"] if resume else [])
    return subprocess.Popen(cmd, env=env, stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)


def kill_job(proc):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def read_progress(progress):
    out = {}
    for r in (0, 1):
        with contextlib.suppress(FileNotFoundError, ValueError):
            out[r] = json.loads((progress / f"rank{r}.json").read_text())
    return out


def alive(pid):
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def finish(proc, timeout, log):
    """Wait for `proc` with a hard timeout; (exit status or None when killed, seconds)."""
    started = time.monotonic()
    try:
        proc.wait(timeout=timeout)
        return proc.returncode, time.monotonic() - started
    except subprocess.TimeoutExpired:
        kill_job(proc)
        return None, time.monotonic() - started


def final_weights(run_dir):
    path = Path(run_dir) / "final.json"
    return [np.asarray(w) for w in json.loads(path.read_text())["weights"]] if path.exists() else None


def last_checkpoint_intact(run_dir):
    """(intact, epoch, why): the newest checkpoint of the index verifies, no fallback needed."""
    from bwkeras import checkpoints

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", checkpoints.CheckpointWarning)
            found = checkpoints.latest(run_dir)
    except (checkpoints.CheckpointWarning, checkpoints.CheckpointError) as exc:
        return False, None, str(exc)[:300]
    if found is None:
        return False, None, "no checkpoint"
    return True, found[0], None


@contextlib.contextmanager
def tmpfs(path, megabytes):
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(path)], check=True,
                   capture_output=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(folder):
    """Write zeros into FOLDER/filler until the file system is full; returns the bytes written."""
    written, block = 0, b"\0" * (1 << 20)
    fd = os.open(os.path.join(folder, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            written += os.write(fd, block)
    except OSError:
        pass
    try:
        while True:  # the last partial block
            written += os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return written


def reference(prefix, work, env, name):
    """The uninterrupted run of `prefix`: its final weights."""
    run_dir = work / f"reference-{name}"
    with open(work / f"reference-{name}.log", "wb") as log:
        proc = start(prefix, run_dir, env, log=log)
        try:
            status, seconds = finish(proc, RESUME_TIMEOUT, log)
        finally:  # an interrupted benchmark leaves no job behind
            kill_job(proc)
    if status != 0:
        raise RuntimeError(f"the uninterrupted {name} run failed ({status}): "
                           f"{(work / f'reference-{name}.log').read_text()[-3000:]}")
    return final_weights(run_dir), seconds


def trial(i, name, prefix, fault, rank, step, work, slurm, ref):
    """One faulted run and its resume; returns the record."""
    record = {"trial": i, "launcher": name, "fault": fault, "rank": rank, "target_step": step}
    tdir = work / f"t{i:03d}-{name}-{fault}"
    tdir.mkdir()
    progress = tdir / "progress"
    progress.mkdir()
    extra = {"SOAK_RAISE": f"{rank}:{step}"} if fault == "exception" else {}
    env = job_env(progress, slurm, extra)
    with contextlib.ExitStack() as stack:
        if fault == "disk_full":
            run_dir = stack.enter_context(tmpfs(tdir / "disk", TMPFS_MB)) / "run"
            record["rank"] = 0  # only the chief writes
        else:
            run_dir = tdir / "run"
        log = stack.enter_context(open(tdir / "job.log", "wb"))
        proc = start(prefix, run_dir, env, log=log)
        stack.callback(kill_job, proc)  # an interrupted benchmark leaves no job behind
        deadline = time.monotonic() + START_TIMEOUT
        seen = {}
        while True:
            seen = read_progress(progress)
            if fault == "exception" or (len(seen) == 2 and seen[rank]["step"] >= step):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        pids = {r: v["pid"] for r, v in seen.items()}
        if fault != "exception" and (proc.poll() is not None or len(seen) < 2 or seen[rank]["step"] < step):
            kill_job(proc)
            record.update(error="the job ended or stalled before the fault step",
                          log=(tdir / "job.log").read_text(errors="replace")[-2000:])
            return record
        fault_at = time.monotonic()
        if fault == "kill":
            os.kill(pids[rank], signal.SIGKILL)
        elif fault == "stop":
            os.kill(pids[rank], signal.SIGSTOP)
        elif fault == "disk_full":
            record["filler_bytes"] = fill(run_dir.parent)
        record["fault_step"] = seen.get(rank, {}).get("step", step)
        status, _ = finish(proc, HANG_TIMEOUT + (START_TIMEOUT if fault == "exception" else 0), log)
        if fault == "exception":
            # The raise happens inside the rank at its step; time it from the step's
            # progress record, the last thing the rank wrote before raising.
            pids = {r: v["pid"] for r, v in read_progress(progress).items()}
            raised = progress / f"rank{rank}.json"
            fault_at = time.monotonic() - (time.time() - raised.stat().st_mtime) if raised.exists() \
                else fault_at
        # every rank gone: the launcher may exit before a rank it started (left behind)
        left = [r for r, pid in pids.items() if alive(pid)]
        gone_by = time.monotonic() + 15
        while any(alive(p) for p in pids.values()) and time.monotonic() < gone_by:
            time.sleep(0.02)
        stragglers = [r for r, pid in pids.items() if alive(pid)]
        for r in stragglers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pids[r], signal.SIGKILL)
        record.update(exit_status=status, hang=status is None,
                      fault_to_exit_s=round(time.monotonic() - fault_at, 3) if not stragglers else None,
                      ranks_alive_after_launcher=left, ranks_left_behind=stragglers)
        intact, epoch, why = last_checkpoint_intact(run_dir)
        record.update(checkpoint_intact=intact, checkpoint_epoch=epoch, checkpoint_problem=why)
        text = (tdir / "job.log").read_text(errors="replace")
        record["names_frozen_rank"] = (f"rank {rank} on" in text and "made no training progress" in text) \
            if fault == "stop" else None
        if status is None or status == 0:
            record["log"] = text[-2000:]
        if fault == "disk_full":
            os.unlink(run_dir.parent / "filler")
        # --resume under the same launcher, to the uninterrupted result
        for f in progress.iterdir():
            f.unlink()
        with open(tdir / "resume.log", "wb") as rlog:
            resumed = start(prefix, run_dir, job_env(progress, slurm), resume=True, log=rlog)
            stack.callback(kill_job, resumed)
            rstatus, rseconds = finish(resumed, RESUME_TIMEOUT, rlog)
        weights = final_weights(run_dir)
        diff = None
        if rstatus == 0 and weights is not None:
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(weights, ref))
        record.update(resume_status=rstatus, resume_seconds=round(rseconds, 1), resume_max_abs_diff=diff,
                      resumed_equal=diff is not None and diff <= ATOL)
        if not record["resumed_equal"]:
            record["resume_log"] = (tdir / "resume.log").read_text(errors="replace")[-2000:]
    shutil.rmtree(tdir, ignore_errors=True)
    return record


def schedule(names, count, rng):
    """[(launcher, fault, rank, step)]: count trials spread evenly over the launchers; each
    launcher cycles through the faults, reshuffled every cycle."""
    per = {n: [] for n in names}
    for k in range(count):
        n = names[k % len(names)]
        if len(per[n]) % len(FAULTS) == 0:
            cycle = list(FAULTS)
            rng.shuffle(cycle)
            per[n].extend(cycle)
    plan, used = [], {n: 0 for n in names}
    for k in range(count):
        n = names[k % len(names)]
        fault = per[n][used[n]]
        used[n] += 1
        # after the first checkpoint (step STEPS+1 on), before the run can end
        plan.append((n, fault, rng.randrange(2), rng.randint(STEPS + 1, EPOCHS * STEPS - 2)))
    rng.shuffle(plan)
    return plan


def summarise(trials):
    def stats(rows):
        done = [r for r in rows if "error" not in r]
        times = [r["fault_to_exit_s"] for r in done if r.get("fault_to_exit_s") is not None]
        return {"trials": len(rows), "faulted": len(done), "hangs": sum(bool(r["hang"]) for r in done),
                "ranks_left_behind": sum(len(r["ranks_left_behind"]) for r in done),
                "fault_to_exit_s_median": statistics.median(times) if times else None,
                "fault_to_exit_s_worst": max(times) if times else None,
                "checkpoint_intact": sum(bool(r["checkpoint_intact"]) for r in done),
                "resumed_equal": sum(bool(r["resumed_equal"]) for r in done),
                "resume_max_abs_diff": max((r["resume_max_abs_diff"] for r in done
                                            if r["resume_max_abs_diff"] is not None), default=None),
                "errors": len(rows) - len(done)}

    out = {"all": stats(trials)}
    for key in ("launcher", "fault"):
        for value in sorted({t[key] for t in trials}):
            out[f"{key}={value}"] = stats([t for t in trials if t[key] == value])
    return out


def run(quick=False, seed=0, count=None):
    from .plots import soak_times

    count = count or (4 if quick else DEFAULT_COUNT)
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="bwkeras-soak-"))
    slurm, why_no_slurm = None, None
    try:
        from slurm_cluster import SlurmCluster, missing_tools  # noqa: F401 (tests/ on the path)
    except ImportError:
        _tests()
        from slurm_cluster import SlurmCluster, missing_tools
    if missing_tools():
        why_no_slurm = f"Slurm not installed (missing {missing_tools()})"
    elif os.geteuid() != 0:
        why_no_slurm = "needs root (the test Slurm runs slurmd as root)"
    else:
        (work / "slurm").mkdir()
        slurm = SlurmCluster(work / "slurm").start()
    try:
        found = launchers(slurm)
        names = sorted(found)
        faults_possible = os.geteuid() == 0  # disk_full mounts a tmpfs
        result = {"seed": seed, "count": count, "epochs": EPOCHS, "steps_per_epoch": STEPS,
                  "stall_seconds": STALL, "hang_timeout_s": HANG_TIMEOUT, "atol": ATOL,
                  "launchers": names, "no_srun": why_no_slurm, "references": {}}
        refs = {}
        for name in names:
            progress = work / f"progress-ref-{name}"
            progress.mkdir()
            refs[name], seconds = reference(found[name], work, job_env(progress, slurm), name)
            result["references"][name] = {"seconds": round(seconds, 1)}
            print(f"  reference {name}: {seconds:.1f} s", flush=True)
        trials = []
        for i, (name, fault, rank, step) in enumerate(schedule(names, count, rng)):
            if fault == "disk_full" and not faults_possible:
                trials.append({"trial": i, "launcher": name, "fault": fault, "error": "needs root (tmpfs)"})
                continue
            record = trial(i, name, found[name], fault, rank, step, work, slurm, refs[name])
            trials.append(record)
            print(f"  {i:3d} {name:16s} {fault:9s} rank {record.get('rank')} step {step:3d}: "
                  + (record["error"] if "error" in record else
                     f"exit {record['exit_status']} after {record['fault_to_exit_s']} s, "
                     f"checkpoint {'intact' if record['checkpoint_intact'] else 'DAMAGED'} "
                     f"(epoch {record['checkpoint_epoch']}), resume "
                     f"{'equal' if record['resumed_equal'] else 'DIFFERS'} ({record['resume_max_abs_diff']})"),
                  flush=True)
        result["summary"] = summarise(trials)
        result["trials"] = trials
        soak_times(result, HERE / "results" / "soak.png")
        result["plot"] = "benchmarks/results/soak.png"
        return result
    finally:
        if slurm is not None:
            slurm.stop()
        shutil.rmtree(work, ignore_errors=True)
