"""A frozen rank (SIGSTOP: alive but silent) under horovodrun --mpi and under srun on this
host: the job ends non-zero within the stall bound, the message names the waiting rank,
the frozen one and their host, the frozen process does not outlive the job, and the last
checkpoint verifies.

The training is the soak benchmark's worker (benchmarks/soak_worker.py: bwkeras' own
training path, a checkpoint per epoch, a progress file per rank that gives the pid to
stop). The stall limit is lowered to STALL seconds (default 120); the bound asserted is
STALL + SLACK, the slack covering the watchdog's 1 s poll and the launcher's teardown on a
busy 2-core machine. (Across nodes, mpirun and horovodrun --gloo: test_multinode_faults.py.)
"""
import os
import signal
import time

import pytest

from benchmarks import soak_bench as soak

pytestmark = [pytest.mark.launcher, pytest.mark.one_stack]
STALL = soak.STALL
SLACK = 45


@pytest.mark.parametrize("launcher", ["horovodrun-mpi", "srun"])
def test_a_frozen_rank_ends_the_job_naming_it_and_leaves_the_checkpoint_intact(request, tmp_path, launcher):
    slurm = request.getfixturevalue("slurm") if launcher == "srun" else None
    prefix = soak.launchers(slurm).get(launcher)
    if prefix is None:
        pytest.skip(f"{launcher} is not available here")
    progress, run_dir = tmp_path / "progress", tmp_path / "run"
    progress.mkdir()
    log_path = tmp_path / "job.log"
    with open(log_path, "wb") as log:
        proc = soak.start(prefix, run_dir, soak.job_env(progress, slurm), log=log)
        # both ranks past the first epoch's checkpoint
        deadline = time.monotonic() + 240
        seen = {}
        while len(seen) < 2 or min(v["step"] for v in seen.values()) < soak.STEPS + 3:
            if proc.poll() is not None or time.monotonic() > deadline:
                soak.kill_job(proc)
                pytest.fail(f"training never reached step {soak.STEPS + 3}:\n"
                            f"{log_path.read_text(errors='replace')[-4000:]}")
            time.sleep(0.02)
            seen = soak.read_progress(progress)
        frozen = seen[1]["pid"]
        os.kill(frozen, signal.SIGSTOP)
        try:
            status, seconds = soak.finish(proc, STALL + 120, log)
            gone_by = time.monotonic() + 15
            while soak.alive(frozen) and time.monotonic() < gone_by:
                time.sleep(0.05)
            outlived = soak.alive(frozen)
        finally:
            if soak.alive(frozen):
                os.kill(frozen, signal.SIGKILL)
    text = log_path.read_text(errors="replace")
    assert status is not None, f"the job still ran {STALL + 120} s after the freeze (a hang):\n{text[-4000:]}"
    assert status != 0, text[-3000:]
    assert seconds < STALL + SLACK, (seconds, text[-3000:])
    assert not outlived, "the frozen rank was left running (stopped) after the job ended"
    host0, host1 = seen[0]["host"], seen[1]["host"]
    assert f"rank 0 on {host0} made no training progress" in text, text[-3000:]
    assert f"rank 1 on {host1}" in text, text[-3000:]
    intact, epoch, why = soak.last_checkpoint_intact(run_dir)
    assert intact and epoch >= 1, why
