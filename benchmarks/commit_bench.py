"""What the stop check of `train.commit_steps` costs per step, two ranks, Gloo.

`horovodrun -np 2 --gloo` runs benchmarks/commit_worker.py: the scaling benchmark's MLP at
a small batch (128 per rank, a short step, where a per-step cost shows most), timed `fit`s
with the check every K steps (K = 20, the value the docs recommend) and without, in
alternating pairs. Reported, from rank 0:

  overhead_direct  time spent inside the check / time of the fits with it (the cost itself)
  overhead_paired  median over pairs of (time with / time without) - 1 (noisier: the
                   machine is shared, and the effect is small against its drift)
  elastic_overhead_direct, elastic_overhead_paired
                   the same for the elastic commit every K steps (train.elastic), which
                   copies the weights and optimizer variables to host memory

Goal (issue 13): under 2% of step time at the recommended interval.

    python -m benchmarks commit [--quick]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
WORKER = str(HERE / "commit_worker.py")
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
       "PYTHONPATH": str(HERE.parent), "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
GOAL = 0.02
K = 20
BATCH = 128


def run(quick=False):
    steps, pairs = (60, 2) if quick else (200, 7)
    local = Path(sys.executable).with_name("horovodrun")
    hvdrun = str(local) if local.exists() else shutil.which("horovodrun")
    if hvdrun is None:
        raise RuntimeError("the commit benchmark needs horovodrun (make setup)")
    with tempfile.TemporaryDirectory() as tmp:
        prefix = os.path.join(tmp, "rank")
        cmd = [hvdrun, "-np", "2", "--gloo", "-H", "localhost:2", sys.executable, WORKER,
               str(steps), str(BATCH), str(K), str(pairs), prefix]
        proc = subprocess.run(cmd, env=dict(os.environ, **ENV), capture_output=True, text=True,
                              timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
        out = json.load(open(prefix + "0.json"))
    with_s, without_s = out["with_s"], out["without_s"]
    direct = sum(out["check_s"]) / sum(with_s)
    paired = statistics.median(w / wo - 1 for w, wo in zip(with_s, without_s))
    checks = statistics.median(out["checks"])
    step_ms = 1000 * statistics.median(without_s) / steps
    elastic_direct = sum(out["commit_s"]) / sum(out["elastic_s"])
    elastic_paired = statistics.median(e / wo - 1 for e, wo in zip(out["elastic_s"], without_s))
    return {"goal": GOAL, "commit_steps": K, "batch_per_rank": BATCH, "ranks": 2, "steps": steps,
            "pairs": pairs, "step_ms": step_ms,
            "check_ms": 1000 * sum(out["check_s"]) / max(sum(out["checks"]), 1),
            "checks_per_fit": checks, "overhead_direct": direct, "overhead_paired": paired,
            "elastic_overhead_direct": elastic_direct, "elastic_overhead_paired": elastic_paired,
            "commit_ms": 1000 * sum(out["commit_s"]) / max(len(out["commit_s"]) * (steps // K), 1),
            "meets_goal": direct < GOAL and elastic_direct < GOAL,
            "with_s": with_s, "without_s": without_s, "elastic_s": out["elastic_s"]}
