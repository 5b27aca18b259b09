"""Scaling over a network: two nodes of the cluster in a box, one rank each, with the link
unshaped, capped at 10 Gbit/s and at 1 Gbit/s (tbf on both ends of each node's link).

Per link profile, in one run (the machine is shared and noisy, so every ratio is taken
against a peer measured in the same run, rounds interleaved):
  allreduce   Horovod allreduce between the nodes, Gloo (horovodrun --gloo -H) and MPI
              (mpirun -H): latency a and bandwidth B of the ring model t = a + 2(N-1)/N S/B;
  throughput  the MLP and LSTM of benchmarks/scaling_worker.py at 2 nodes x 1 rank:
    independent-np2   a plain process on each node at once, no communication: the ceiling
    bwkeras-mpi, bwkeras-gloo   horovodrun -H node1:1,node2:1 (MPI, --gloo)
    stock-horovod-mpi           Horovod's own Keras wrapper (keras2 stack), the same job
    at 1 Gbit/s also: bwkeras-mpi-grouped (one grouped allreduce after backprop: nothing
    overlaps), bwkeras-mpi-fp16 (buckets, fp16 on the wire), bwkeras-mpi-accum2 (buckets,
    one exchange per two batches).
  Beside each bwkeras and stock job, the ring model's step time extended for overlap:
  t_compute (the ceiling's step) + a + 2(N-1)/N x S_exposed/B, with a, B this profile's
  fitted values and S_exposed the bytes that cannot hide behind backprop: all gradients
  for one grouped allreduce; for buckets (and Horovod's per-tensor ops) only the last
  bucket (tensor), the gradients backprop produces last, assuming the earlier ones finish
  while it is computed. Halved with fp16, spread over two steps with accumulation.

    sudo python -m benchmarks multinode [--quick] [--models mlp,lstm] [--profiles none,10gbit,1gbit]

Needs root (it starts tests/cluster.py's box and removes it afterwards).
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .allreduce_bench import MLP_GRADIENT_BYTES, fit_ring_model, sizes
from .scaling_bench import ENV, MODELS, keras2_python

HERE = Path(__file__).parent
REPO = HERE.parent
WORKER = str(HERE / "scaling_worker.py")
AR_WORKER = str(HERE / "allreduce_worker.py")
# LSTM(64) on 1 input + Dense(1): 4 * (4*64*(1+64+1)) + 4 * (64+1) bytes of gradients.
LSTM_GRADIENT_BYTES = 4 * (4 * 64 * (1 + 64 + 1) + 64 + 1)
GRADIENT_BYTES = {"mlp": MLP_GRADIENT_BYTES, "lstm": LSTM_GRADIENT_BYTES}
# Each model's gradient tensors in the order of its variables (float32 bytes).
TENSOR_BYTES = {
    "mlp": [4 * n for n in (784 * 512, 512, 512 * 512, 512, 512 * 10, 10)],
    "lstm": [4 * n for n in (4 * 64, 64 * 4 * 64, 4 * 64, 64, 1)],
}
PROFILES = ("none", "10gbit", "1gbit")
TIMEOUT = 600


def _env(extra=()):
    env = dict(os.environ, **ENV, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.update(extra)
    return env


def _finish(procs):
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=TIMEOUT)
        except Exception:
            for p in procs:
                p.kill()
            raise RuntimeError(f"{proc.args[-8:]} did not finish in {TIMEOUT} s")
        if proc.returncode != 0:
            raise RuntimeError(f"{proc.args[-8:]} failed:\n{err[-3000:]}")


def mpi_x(*names):
    return [a for n in ("PATH", "PYTHONPATH", "TF_CPP_MIN_LOG_LEVEL", "TF_NUM_INTRAOP_THREADS",
                        "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS", *names) for a in ("-x", n)]


def launchers(python):
    """-> {transport: argv prefix that starts 2 ranks, one on each node}."""
    bindir = Path(python).parent
    hosts = ["-np", "2", "-H", "node1:1,node2:1"]
    return {"mpi": [str(bindir / "horovodrun"), "--mpi", *hosts],
            "gloo": [str(bindir / "horovodrun"), "--gloo", *hosts]}


def allreduce(box, transport, message_sizes):
    node1 = box.node("node1")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "ar.json")
        if transport == "mpi":
            argv = ["mpirun", "-np", "2", "-H", "node1,node2", "--bind-to", "none", *mpi_x(),
                    sys.executable, AR_WORKER]
        else:
            argv = launchers(sys.executable)["gloo"] + [sys.executable, AR_WORKER]
        proc = node1.popen(argv + [out, *map(str, message_sizes)], cwd=str(REPO),
                           env=_env({"PYTHONPATH": str(REPO)}), stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        _finish([proc])
        doc = json.load(open(out))
    rows = [{"bytes": r["bytes"], "seconds_median": statistics.median(r["seconds"])} for r in doc["sizes"]]
    latency, bandwidth = fit_ring_model(rows, 2)
    return {"latency_s": latency, "bandwidth_bytes_per_s": bandwidth, "rows": rows}


def configs(profile, model):
    py, k2 = sys.executable, keras2_python()
    ours = launchers(py)
    found = {
        "independent-np2": [("node1", [py, WORKER, "plain", model], {}),
                            ("node2", [py, WORKER, "plain", model], {})],
        "bwkeras-mpi": [("node1", ours["mpi"] + [py, WORKER, "bwkeras", model], {})],
        "bwkeras-gloo": [("node1", ours["gloo"] + [py, WORKER, "bwkeras", model], {})],
    }
    if k2:
        found["stock-horovod-mpi"] = [("node1", launchers(k2)["mpi"] + [k2, WORKER, "stock", model], {})]
    if profile == "1gbit":
        found["bwkeras-mpi-grouped"] = [("node1", ours["mpi"] + [py, WORKER, "bwkeras", model],
                                         {"BENCH_BUCKET": "none"})]
        found["bwkeras-mpi-fp16"] = [("node1", ours["mpi"] + [py, WORKER, "bwkeras", model],
                                      {"BENCH_COMPRESSION": "fp16"})]
        found["bwkeras-mpi-accum2"] = [("node1", ours["mpi"] + [py, WORKER, "bwkeras", model],
                                        {"BENCH_PASSES": "2"})]
    return found


def run_job(box, jobs, steps, batch):
    """Start `jobs` together on their nodes; -> (summed samples/s, per-rank documents)."""
    with tempfile.TemporaryDirectory() as tmp:
        sync, out = os.path.join(tmp, "sync"), os.path.join(tmp, "out")
        os.mkdir(sync), os.mkdir(out)
        count = sum(2 if "-np" in argv else 1 for _, argv, _ in jobs)
        procs = []
        for i, (node, argv, extra) in enumerate(jobs):
            env = _env({"PYTHONPATH": str(REPO), "BENCH_SYNC_DIR": sync, "BENCH_SYNC_COUNT": str(count),
                        **extra})
            procs.append(box.node(node).popen(
                argv + [str(steps), str(batch), os.path.join(out, f"p{i}-r")], cwd=str(REPO),
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
        _finish(procs)
        docs = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out))]
    if len(docs) != count:
        raise RuntimeError(f"expected {count} result files, got {len(docs)}")
    return sum(d["samples_per_s"] for d in docs), docs


def exposed_bytes(model, name):
    """The gradient bytes of `model` whose exchange cannot overlap backprop in job `name`:
    all of them for one grouped allreduce, else the last bucket's (bwkeras' default
    buckets) or the last tensor's (Horovod's per-tensor ops)."""
    from bwkeras.distributed.optimizer import DEFAULT_BUCKET_BYTES, buckets

    sizes = TENSOR_BYTES[model]
    if name.endswith("-grouped"):
        return sum(sizes)
    last = buckets(sizes, 1 if name.startswith("stock") else DEFAULT_BUCKET_BYTES)[-1]
    return sum(sizes[i] for i in last)


def predicted_step_ms(compute_ms, fit, gradient_bytes, name):
    """The ring model's step: compute + a + 2(N-1)/N S/B, per the job's wire format, S the
    bytes that cannot hide (`exposed_bytes`)."""
    nbytes, exchanges = gradient_bytes, 1.0
    if name.endswith("-fp16"):
        nbytes /= 2
    if name.endswith("-accum2"):
        exchanges = 0.5
    comm = fit["latency_s"] + 2 * (2 - 1) / 2 * nbytes / fit["bandwidth_bytes_per_s"]
    return compute_ms + 1e3 * exchanges * comm


def summarise(samples, steps_ms, fits, model):
    ceiling = statistics.median(samples["independent-np2"])
    compute_ms = statistics.median(steps_ms["independent-np2"])
    rows = {}
    for name, values in samples.items():
        med = statistics.median(values)
        row = {"samples_per_s_median": med, "min": min(values), "max": max(values), "runs": values,
               "step_ms_median": statistics.median(steps_ms[name]),
               "of_ceiling": med / ceiling}
        transport = "gloo" if "-gloo" in name else "mpi"
        if name != "independent-np2":
            row["predicted_step_ms"] = predicted_step_ms(compute_ms, fits[transport],
                                                         exposed_bytes(model, name), name)
            row["predicted_no_overlap_ms"] = predicted_step_ms(compute_ms, fits[transport],
                                                               GRADIENT_BYTES[model], name)
            row["measured_over_predicted"] = row["step_ms_median"] / row["predicted_step_ms"]
        rows[name] = row
    return rows


def markdown(result):
    """The tables of docs/performance.md from a result: the fitted link per profile, and
    each job's throughput share of the ceiling beside the ring model's."""
    from bwkeras.report import markdown_table

    links, jobs = [], []
    for profile, entry in result["profiles"].items():
        for transport, fit in entry["allreduce"].items():
            links.append({"profile": profile, "transport": transport,
                          "latency a (us)": round(fit["latency_s"] * 1e6),
                          "bandwidth B (Gbit/s)": fit["bandwidth_bytes_per_s"] * 8 / 1e9})
        for model, rows in entry["models"].items():
            for name, row in rows.items():
                jobs.append({"profile": profile, "model": model, "job": name,
                             "samples/s (median)": round(row["samples_per_s_median"]),
                             "min-max": f"{row['min']:,.0f}-{row['max']:,.0f}",
                             "of ceiling": row["of_ceiling"],
                             "step ms": row["step_ms_median"],
                             "ring model ms": row.get("predicted_step_ms", ""),
                             "without overlap ms": row.get("predicted_no_overlap_ms", ""),
                             "measured / model": row.get("measured_over_predicted", "")})
    return markdown_table(links, floatfmt=".3g") + "\n\n" + markdown_table(jobs, floatfmt=".3g")


def _chosen(kind, asked, allowed):
    unknown = [n for n in asked if n not in allowed]
    if unknown:
        raise SystemExit(f"benchmarks: unknown {kind} {unknown}; expected some of {list(allowed)}")
    return list(asked)


def run(quick=False, models=None, profiles=None):
    sys.path.insert(0, str(REPO))
    from tests.cluster import Cluster

    if os.geteuid() != 0:
        raise SystemExit("benchmarks multinode: needs root (it starts the cluster in a box)")
    steps, repeats = (10, 1) if quick else (30, 3)
    models = _chosen("models", models, MODELS) if models else ["mlp"] if quick else list(MODELS)
    profiles = (_chosen("profiles", profiles, PROFILES) if profiles
                else ("none", "1gbit") if quick else PROFILES)
    message_sizes = sizes(quick)
    result = {"steps": steps, "repeats": repeats, "ranks": 2, "nodes": 2,
              "gradient_bytes": GRADIENT_BYTES, "profiles": {}}
    box = Cluster(2).up()
    try:
        for profile in profiles:
            box.shape(profile)
            fits = {t: allreduce(box, t, message_sizes) for t in ("mpi", "gloo")}
            for t, f in fits.items():
                print(f"  {profile} allreduce {t}: latency {f['latency_s'] * 1e6:.0f} us, "
                      f"bandwidth {f['bandwidth_bytes_per_s'] * 8 / 1e9:.2f} Gbit/s", flush=True)
            entry = {"allreduce": fits, "models": {}}
            for model in models:
                found = configs(profile, model)
                samples = {n: [] for n in found}
                steps_ms = {n: [] for n in found}
                for i in range(repeats):
                    for name in (list(found) if i % 2 == 0 else list(reversed(found))):
                        total, docs = run_job(box, found[name], steps, MODELS[model])
                        samples[name].append(total)
                        steps_ms[name].append(statistics.median(d["step_ms"] for d in docs))
                        print(f"  {profile} {model} {name}: {total:,.0f} samples/s", flush=True)
                entry["models"][model] = summarise(samples, steps_ms, fits, model)
            result["profiles"][profile] = entry
    finally:
        box.down()
    print(markdown(result), flush=True)
    try:
        from benchmarks.plots import multinode_bars

        multinode_bars(result, HERE / "results" / "multinode.png")
        result["plot"] = "benchmarks/results/multinode.png"
    except ImportError:
        pass
    return result
