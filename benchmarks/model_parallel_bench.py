"""Data- against tensor-parallel training of one MLP at np=2, beside one process.

The MLP 784-WIDTH-10 (benchmarks/model_parallel_worker.py), batch B per replica:

  plain-np1   one process (k = 1, no launcher): the baseline of every ratio
  data-np2    horovodrun -np 2 --gloo, k = 1: two replicas, batch 2B per step
  tensor-np2  horovodrun -np 2 --gloo, k = 2: one model over two ranks, batch B per step

For each: samples/s (global), its ratio to plain-np1, peak memory above start-up per rank,
parameters per rank, and the bytes each rank sends per step that the scheme implies
(ring allreduce of n floats: 2 (N-1)/N x 4n bytes): data parallel, every gradient;
tensor parallel, the forward allreduce of the B x 10 head output and the backward one of
the B x 784 input gradient (none here: the input is data, so Keras skips it).
2-D (d x k) needs 4 ranks; on this 2-core machine they would be oversubscribed, so it is
left to tests/test_model_parallel_training.py for correctness.

    python -m benchmarks model_parallel [--quick]
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
WORKER = str(HERE / "model_parallel_worker.py")
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(HERE.parent),
       "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def _ring_bytes(floats, n):
    return 2 * (n - 1) / n * 4 * floats


def _job(np_, k, width, batch, steps):
    with tempfile.TemporaryDirectory() as out:
        launcher = [] if np_ == 1 else [os.path.join(os.path.dirname(sys.executable), "horovodrun"),
                                        "-np", str(np_), "--gloo", "-H", f"localhost:{np_}"]
        cmd = launcher + [sys.executable, WORKER, str(k), str(width), str(batch), str(steps)]
        subprocess.run(cmd, env=dict(os.environ, **ENV, OUT_DIR=out), check=True, timeout=600,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        return [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(np_)]


def run(quick=False):
    width, batch, steps = (1024, 128, 20) if quick else (4096, 256, 60)
    full = 784 * width + width + width * 10 + 10
    volume = {"plain-np1": 0.0, "data-np2": _ring_bytes(full, 2),
              "tensor-np2": _ring_bytes(batch * 10, 2)}
    configs = {"plain-np1": (1, 1), "data-np2": (2, 1), "tensor-np2": (2, 2)}
    # Rounds in alternating order (the machine is shared): medians and spread of the
    # throughput, the largest peak memory seen.
    runs = {name: [] for name in configs}
    for i in range(1 if quick else 3):
        for name in (list(configs) if i % 2 == 0 else list(reversed(configs))):
            runs[name].append(_job(*configs[name], width, batch, steps))
    rows = {}
    for name, done in runs.items():
        speeds = [ranks[0]["samples_per_s"] for ranks in done]
        rows[name] = {"samples_per_s": statistics.median(speeds), "min": min(speeds), "max": max(speeds),
                      "peak_mib_per_rank": max(r["peak_bytes"] for ranks in done for r in ranks) / 2**20,
                      "params_per_rank": done[0][0]["params"],
                      "bytes_sent_per_step_per_rank": volume[name]}
    base = rows["plain-np1"]["samples_per_s"]
    for row in rows.values():
        row["speedup"] = row["samples_per_s"] / base
    return {"width": width, "batch_per_replica": batch, "steps": steps, "rounds": len(runs["plain-np1"]),
            "configs": rows}
