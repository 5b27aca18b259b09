"""Allreduce latency and bandwidth against message size: Gloo, MPI, and the ring model.

Two ranks on this host reduce float32 tensors of 4 KiB to 64 MiB (and the MLP's 2.7 MB of
gradients) through Horovod, under
  gloo       `horovodrun -np 2 --gloo` (TCP over loopback);
  mpi        `mpirun -np 2` (shared memory) with bwkeras' default of yielding while waiting;
  mpi-spin   the same with Open MPI's own default, busy-polling (mpi_yield_when_idle=0).
Beside each, the ring-allreduce cost model t = a + 2(N-1)/N * S/B, with the bandwidth B
fitted to the messages of 4 MiB and more and the latency a to those of 64 KiB and less, and the copy
bandwidth of one core (numpy copy of 64 MiB): on one host every byte of an allreduce is at
least copied once, so B cannot beat it.

    python -m benchmarks allreduce [--quick]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from .scaling_bench import ENV, _tool

HERE = Path(__file__).parent
WORKER = str(HERE / "allreduce_worker.py")
MLP_GRADIENT_BYTES = 4 * (784 * 512 + 512 + 512 * 512 + 512 + 512 * 10 + 10)


def sizes(quick):
    powers = range(12, 21, 4) if quick else range(12, 27, 2)  # 4 KiB .. 64 MiB
    return sorted({2 ** p for p in powers} | {MLP_GRADIENT_BYTES})


def transports():
    py = sys.executable
    found = {}
    hvdrun, mpirun = _tool(py, "horovodrun"), _tool(py, "mpirun")
    if hvdrun:
        found["gloo"] = ([hvdrun, "-np", "2", "-H", "localhost:2", "--gloo", py, WORKER], {})
    if mpirun:
        base = [mpirun, "-np", "2", "--bind-to", "none", "-x", "PYTHONPATH", py, WORKER]
        found["mpi"] = (base, {})
        found["mpi-spin"] = (base, {"OMPI_MCA_mpi_yield_when_idle": "0"})
    return found


def memcpy_bandwidth(nbytes=64 * 2 ** 20, repeats=10):
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - started)
    return nbytes / statistics.median(times)


def fit_ring_model(rows, ranks, large=4 * 2 ** 20, small=64 * 2 ** 10):
    """(latency a in s, bandwidth B in bytes/s) of t = a + 2(N-1)/N S / B.

    The two terms are read where each dominates: B from the slope over messages of at least
    `large` bytes, then a as the median of t - 2(N-1)/N S / B over messages of at most
    `small` bytes (all messages stand in for either range when it has too few points)."""
    x = np.array([2 * (ranks - 1) / ranks * r["bytes"] for r in rows], dtype=float)
    t = np.array([r["seconds_median"] for r in rows], dtype=float)
    sizes = np.array([r["bytes"] for r in rows])
    big = sizes >= large if (sizes >= large).sum() >= 2 else np.ones_like(sizes, dtype=bool)
    slope, _ = np.polyfit(x[big], t[big], 1)
    bandwidth = 1.0 / float(slope)
    tiny = sizes <= small if (sizes <= small).any() else np.ones_like(sizes, dtype=bool)
    latency = float(np.median(t[tiny] - x[tiny] / bandwidth))
    return max(latency, 0.0), bandwidth


def run_transport(argv, extra, message_sizes):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "allreduce.json")
        proc = subprocess.run(argv + [out] + [str(s) for s in message_sizes],
                              env=dict(os.environ, **ENV, **extra), capture_output=True, text=True,
                              timeout=600)
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"{argv} failed:\n{proc.stderr[-3000:]}")
        doc = json.load(open(out))
    rows = [{"bytes": r["bytes"], "seconds_median": statistics.median(r["seconds"]),
             "seconds_min": min(r["seconds"]), "seconds_max": max(r["seconds"]), "calls": len(r["seconds"])}
            for r in doc["sizes"]]
    return doc["ranks"], rows


def run(quick=False):
    result = {"ranks": 2, "transports": {}, "model": {}, "fit": {},
              "memcpy_bytes_per_s": memcpy_bandwidth()}
    message_sizes = sizes(quick)
    for name, (argv, extra) in transports().items():
        ranks, rows = run_transport(argv, extra, message_sizes)
        latency, bandwidth = fit_ring_model(rows, ranks)
        result["ranks"] = ranks
        result["transports"][name] = rows
        result["fit"][name] = {"latency_s": latency, "bandwidth_bytes_per_s": bandwidth,
                               "bandwidth_over_memcpy": bandwidth / result["memcpy_bytes_per_s"]}
        result["model"][name] = [latency + 2 * (ranks - 1) / ranks * r["bytes"] / bandwidth for r in rows]
        mlp = next(r for r in rows if r["bytes"] == MLP_GRADIENT_BYTES)
        print(f"  {name}: latency {latency * 1e6:.0f} us, bandwidth {bandwidth / 1e9:.2f} GB/s, "
              f"MLP gradients ({MLP_GRADIENT_BYTES / 1e6:.1f} MB) {mlp['seconds_median'] * 1e3:.2f} ms",
              flush=True)
    try:
        from benchmarks.plots import allreduce_curves

        allreduce_curves(result, HERE / "results" / "allreduce.png")
        result["plot"] = "benchmarks/results/allreduce.png"
    except ImportError:
        pass
    return result
