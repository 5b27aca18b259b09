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

With --profiles (root), the np=2 jobs run once more across two nodes of the cluster in a
box (tests/cluster.py), one rank per node, over each link profile: tensor parallelism
sends its activations over the link every layer, data parallelism its gradients once a
step.

    python -m benchmarks model_parallel [--quick]
    sudo python -m benchmarks model_parallel --profiles none,1gbit
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
TIMEOUT = 600
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(HERE.parent),
       "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def _ring_bytes(floats, n):
    return 2 * (n - 1) / n * 4 * floats


def _job(np_, k, width, batch, steps, box=None):
    """One launched job; with `box` (the cluster in a box) its ranks run one per node,
    started from node1, else on this host. -> the ranks' documents."""
    with tempfile.TemporaryDirectory() as out:
        hosts = "node1:1,node2:1" if box is not None else f"localhost:{np_}"
        launcher = [] if np_ == 1 else [os.path.join(os.path.dirname(sys.executable), "horovodrun"),
                                        "-np", str(np_), "--gloo", "-H", hosts]
        cmd = launcher + [sys.executable, WORKER, str(k), str(width), str(batch), str(steps)]
        env = dict(os.environ, **ENV, OUT_DIR=out)
        env["PATH"] = f"{os.path.dirname(sys.executable)}:{env['PATH']}"
        if box is None:
            subprocess.run(cmd, env=env, check=True, timeout=TIMEOUT,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        else:
            proc = box.node("node1").popen(cmd, cwd=str(HERE.parent), env=env, stdout=subprocess.DEVNULL,
                                           stderr=subprocess.PIPE, text=True)
            try:
                _, err = proc.communicate(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise RuntimeError(f"{cmd[-5:]} did not finish in {TIMEOUT} s on the box")
            if proc.returncode != 0:
                raise RuntimeError(f"{cmd[-5:]} failed on the box:\n{err[-3000:]}")
        return [json.loads(Path(out, f"rank{r}.json").read_text()) for r in range(np_)]


def measure(width, batch, steps, rounds, box=None):
    """{config: row} for one process, data parallel and tensor parallel at np=2, `rounds`
    rounds in alternating order (the machine is shared): medians and spread of the
    throughput, the largest peak memory seen, and the bytes each scheme implies."""
    full = 784 * width + width + width * 10 + 10
    volume = {"plain-np1": 0.0, "data-np2": _ring_bytes(full, 2),
              "tensor-np2": _ring_bytes(batch * 10, 2)}
    configs = {"plain-np1": (1, 1), "data-np2": (2, 1), "tensor-np2": (2, 2)}
    runs = {name: [] for name in configs}
    for i in range(rounds):
        for name in (list(configs) if i % 2 == 0 else list(reversed(configs))):
            runs[name].append(_job(*configs[name], width, batch, steps, box=box))
            print(f"  {'box ' if box else ''}{name}: {runs[name][-1][0]['samples_per_s']:,.0f} samples/s",
                  flush=True)
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
    return rows


def markdown(result):
    """The docs' table: one row per place (this host, or a link profile of the box) and
    configuration."""
    from bwkeras.report import markdown_table

    places = {"one host": result["configs"], **{f"2 nodes, {p}": r["configs"]
                                                for p, r in result.get("profiles", {}).items()}}
    return markdown_table([{"where": where, "configuration": name,
                            "samples/s (median)": round(row["samples_per_s"]),
                            "min-max": f"{row['min']:,.0f}-{row['max']:,.0f}",
                            "vs one process": row["speedup"],
                            "peak MiB per rank": row["peak_mib_per_rank"],
                            "parameters per rank": row["params_per_rank"],
                            "MB sent per rank per step": row["bytes_sent_per_step_per_rank"] / 1e6}
                           for where, rows in places.items() for name, row in rows.items()],
                          floatfmt=".3g")


def run(quick=False, profiles=None):
    """profiles: link profiles of the cluster in a box (needs root) to measure the np=2
    jobs across two nodes as well, one rank per node, plain-np1 on node1."""
    from benchmarks.multinode_bench import PROFILES

    unknown = [p for p in profiles or () if p not in PROFILES]
    if unknown:   # before any measuring: a typo must not cost the first part's minutes
        raise SystemExit(f"benchmarks model_parallel: unknown profiles {unknown}; expected some of "
                         f"{list(PROFILES)}")
    if profiles and os.geteuid() != 0:
        raise SystemExit("benchmarks model_parallel --profiles: needs root (it starts the cluster in a box)")
    width, batch, steps = (1024, 128, 20) if quick else (4096, 256, 60)
    rounds = 1 if quick else 3
    result = {"width": width, "batch_per_replica": batch, "steps": steps, "rounds": rounds,
              "configs": measure(width, batch, steps, rounds)}
    if profiles:
        sys.path.insert(0, str(HERE.parent))
        from tests.cluster import Cluster

        box = Cluster(2).up()
        try:
            result["profiles"] = {}
            for profile in profiles:
                box.shape(profile)
                result["profiles"][profile] = {"configs": measure(width, batch, steps, rounds, box=box)}
        finally:
            box.down()
    print(markdown(result), flush=True)
    return result
