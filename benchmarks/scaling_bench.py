"""Data-parallel scaling of the 784-512-512-10 MLP (batch 1024 per rank, one TF thread).

Configurations, interleaved and repeated in one run (the machine is shared and noisy):
- plain-np1: Keras alone in one process: the baseline of every ratio;
- bwkeras-np1: the same script through bwkeras.distributed, no launcher;
- bwkeras-np2-gloo: `horovodrun -np 2 --gloo`;  bwkeras-np2-mpi: `mpirun -np 2`;
- independent-np2: two plain processes at once, no communication: the ceiling.
Throughput of an np=2 job is the sum over ranks; efficiency = throughput / (np x the
median plain-np1 throughput). Issue's goal at np=2: >= 1.7 (85%).

    python -m benchmarks scaling [--quick]
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = str(Path(__file__).with_name("scaling_worker.py"))
REPO = str(Path(__file__).parents[1])
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "PYTHONPATH": REPO}


def _bin(name):
    local = Path(sys.executable).with_name(name)
    return str(local) if local.exists() else shutil.which(name)


def _configs():
    py = sys.executable
    configs = {
        "plain-np1": [[py, WORKER, "plain"]],
        "bwkeras-np1": [[py, WORKER, "bwkeras"]],
        "independent-np2": [[py, WORKER, "plain"], [py, WORKER, "plain"]],
    }
    if _bin("horovodrun"):
        configs["bwkeras-np2-gloo"] = [[_bin("horovodrun"), "-np", "2", "--gloo", "-H", "localhost:2",
                                        py, WORKER, "bwkeras"]]
    if _bin("mpirun"):
        configs["bwkeras-np2-mpi"] = [[_bin("mpirun"), "-np", "2", "--bind-to", "none",
                                       "-x", "PYTHONPATH", "-x", "TF_CPP_MIN_LOG_LEVEL",
                                       py, WORKER, "bwkeras"]]
    return configs


def _run(commands, steps, batch):
    """Start `commands` together; the summed samples/s of every process's every rank."""
    with tempfile.TemporaryDirectory() as out:
        procs = [subprocess.Popen(cmd + [str(steps), str(batch), os.path.join(out, f"p{i}-r")],
                                  env=dict(os.environ, **ENV), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
                 for i, cmd in enumerate(commands)]
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"{proc.args} failed:\n{err[-2000:]}")
        rates = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out))]
    return sum(r["samples_per_s"] for r in rates)


def run(quick=False):
    steps, batch, repeats = (10, 1024, 1) if quick else (40, 1024, 3)
    configs = _configs()
    samples = {name: [] for name in configs}
    for i in range(repeats):
        order = list(configs) if i % 2 == 0 else list(reversed(configs))
        for name in order:
            samples[name].append(_run(configs[name], steps, batch))
            print(f"  {name}: {samples[name][-1]:,.0f} samples/s", flush=True)
    base = statistics.median(samples["plain-np1"])
    result = {"model": "MLP 784-512-512-10", "batch_per_rank": batch, "steps": steps,
              "repeats": repeats, "baseline": "plain-np1", "configs": {}}
    for name, values in samples.items():
        np_ = 2 if "np2" in name else 1
        med = statistics.median(values)
        result["configs"][name] = {
            "samples_per_s_median": med, "min": min(values), "max": max(values),
            "speedup_vs_plain_np1": med / base, "efficiency": med / (np_ * base),
        }
    return result
