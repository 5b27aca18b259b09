"""Data-parallel scaling: samples/s at np=1 and np=2, bwkeras against its peers.

Models (benchmarks/scaling_worker.py): the MLP 784-512-512-10 at batch 1024 per process and
the LSTM forecaster (window 32, 64 units) at batch 256 per process. Configurations, each
started as a user would (launcher defaults, no tuning), interleaved and repeated in one run
because the machine is shared and noisy:

  plain-np1            plain Keras, one process, one TF thread: the baseline of every ratio
  bwkeras-np1          bwkeras model + wrapper, no launcher, one TF thread (see `overhead`)
  stock-horovod-np1, mwms-np1   the peers below as a lone process, one TF thread
  independent-np2      two plain processes at once, no communication: the ceiling
  bwkeras-np2          `horovodrun -np 2` (Open MPI underneath when Horovod was built with it)
  bwkeras-np2-gloo     `horovodrun -np 2 --gloo`
  bwkeras-keras2-np2[-gloo]     bwkeras on the keras2 stack: the same job as the stock peer
  stock-horovod-np2    Horovod's Keras example on the keras2 stack, `horovodrun -np 2`
  stock-horovod-np2-gloo   the same with --gloo
  mwms-np2             tf.distribute.MultiWorkerMirroredStrategy, keras2 stack, 2 workers

Throughput of an np=2 job is the sum over its processes; speedup = throughput / median
plain-np1 throughput of the same model; efficiency = speedup / np; speedup_vs_own_np1 sets
an np=2 job beside the same framework alone (bwkeras-np2-gloo / bwkeras-np1, ...). Every process of a job
starts its timed window together (a file barrier), so they compete for the cores as in
training. The issue's goal for bwkeras-np2 (MLP): speedup >= 1.7, and never below stock.

    python -m benchmarks scaling [--quick]
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
WORKER = str(HERE / "scaling_worker.py")
REPO = str(HERE.parent)
ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "OMPI_ALLOW_RUN_AS_ROOT": "1",
       "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "PYTHONPATH": REPO}
MODELS = {"mlp": 1024, "lstm": 256}  # batch per process
ONE_THREAD = {"BENCH_THREADS": "1"}


def keras2_python():
    """The keras2 stack's interpreter (for the stock Horovod and MWMS peers), or None."""
    python = Path(REPO) / ".venv-keras2" / "bin" / "python"
    return str(python) if python.exists() else None


def _tool(python, name):
    path = Path(python).with_name(name)
    return str(path) if path.exists() else shutil.which(name)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _mwms(python, model):
    """Two MWMS workers on this host; TF_CONFIG is built afresh (new ports) for each run."""
    def jobs():
        hosts = [f"localhost:{p}" for p in _free_ports(2)]
        return [([python, WORKER, "mwms", model], {"TF_CONFIG": json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": i}})}) for i in range(2)]
    return jobs


def configs(model):
    """name -> function returning [(argv without the trailing args, extra env), ...]."""
    py, k2 = sys.executable, keras2_python()
    hvdrun = _tool(py, "horovodrun")
    found = {
        "plain-np1": lambda: [([py, WORKER, "plain", model], ONE_THREAD)],
        "bwkeras-np1": lambda: [([py, WORKER, "bwkeras", model], ONE_THREAD)],
        "independent-np2": lambda: [([py, WORKER, "plain", model], ONE_THREAD)] * 2,
    }
    if hvdrun:
        ours = [hvdrun, "-np", "2", "-H", "localhost:2"]
        found["bwkeras-np2"] = lambda: [(ours + [py, WORKER, "bwkeras", model], {})]
        found["bwkeras-np2-gloo"] = lambda: [(ours + ["--gloo", py, WORKER, "bwkeras", model], {})]
    if k2:
        found["stock-horovod-np1"] = lambda: [([k2, WORKER, "stock", model], ONE_THREAD)]
        found["mwms-np1"] = lambda: [([k2, WORKER, "mwms", model], ONE_THREAD)]
    if k2 and _tool(k2, "horovodrun"):
        stock = [_tool(k2, "horovodrun"), "-np", "2", "-H", "localhost:2"]
        found["bwkeras-keras2-np2"] = lambda: [(stock + [k2, WORKER, "bwkeras", model], {})]
        found["bwkeras-keras2-np2-gloo"] = lambda: [(stock + ["--gloo", k2, WORKER, "bwkeras", model], {})]
        found["stock-horovod-np2"] = lambda: [(stock + [k2, WORKER, "stock", model], {})]
        found["stock-horovod-np2-gloo"] = lambda: [(stock + ["--gloo", k2, WORKER, "stock", model], {})]
    if k2:
        found["mwms-np2"] = _mwms(k2, model)
    return found


def run_once(jobs, steps, batch):
    """Start `jobs` together; returns (summed samples/s, per-process documents)."""
    with tempfile.TemporaryDirectory() as tmp:
        sync, out = os.path.join(tmp, "sync"), os.path.join(tmp, "out")
        os.mkdir(sync), os.mkdir(out)
        # Each launched job counts its ranks: 2 for a launcher line, 1 for a bare process.
        count = sum(2 if "-np" in argv else 1 for argv, _ in jobs)
        procs = []
        for i, (argv, extra) in enumerate(jobs):
            env = dict(os.environ, **ENV, **extra, BENCH_SYNC_DIR=sync, BENCH_SYNC_COUNT=str(count))
            procs.append(subprocess.Popen(argv + [str(steps), str(batch), os.path.join(out, f"p{i}-r")],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True, start_new_session=True))
        for proc in procs:
            try:
                _, err = proc.communicate(timeout=300)
            except subprocess.TimeoutExpired:
                for p in procs:
                    os.killpg(p.pid, 9)
                raise RuntimeError(f"{proc.args} did not finish in 300 s")
            if proc.returncode != 0:
                raise RuntimeError(f"{proc.args} failed:\n{err[-3000:]}")
        docs = [json.load(open(os.path.join(out, f))) for f in sorted(os.listdir(out))]
    if len(docs) != count:
        raise RuntimeError(f"expected {count} result files, got {len(docs)}")
    return sum(d["samples_per_s"] for d in docs), docs


def summarise(samples, base_name="plain-np1"):
    base = statistics.median(samples[base_name])
    rows = {}
    for name, values in samples.items():
        np_ = 2 if "np2" in name else 1
        med = statistics.median(values)
        rows[name] = {"np": np_, "samples_per_s_median": med, "min": min(values), "max": max(values),
                      "runs": values, "speedup": med / base, "efficiency": med / (np_ * base)}
    for name, row in rows.items():  # np=2 against the same framework's own np=1
        own = name.split("-np2")[0].replace("-keras2", "") + "-np1"
        if row["np"] == 2 and own in rows and own != base_name:
            row["speedup_vs_own_np1"] = row["samples_per_s_median"] / rows[own]["samples_per_s_median"]
    return rows


def interleaved(found, repeats, steps, batch, label, unit="samples/s"):
    """{name: [throughput per round]} of the jobs `found` (name -> jobs), `repeats` rounds
    in alternating order (forward, then reversed), so a slow spell of the shared machine
    does not fall on one configuration only."""
    samples = {name: [] for name in found}
    for i in range(repeats):
        for name in (list(found) if i % 2 == 0 else list(reversed(found))):
            total, _ = run_once(found[name](), steps, batch)
            samples[name].append(total)
            print(f"  {label} {name}: {total:,.0f} {unit}", flush=True)
    return samples


def run(quick=False):
    steps, repeats = (10, 1) if quick else (40, 5)
    models = ["mlp"] if quick else list(MODELS)
    result = {"steps": steps, "repeats": repeats, "baseline": "plain-np1",
              "batch_per_process": {m: MODELS[m] for m in models}, "models": {}}
    for model in models:
        found = configs(model)
        result["models"][model] = summarise(interleaved(found, repeats, steps, MODELS[model], model))
    result["skipped"] = [] if keras2_python() else ["stock-horovod-*", "mwms-np2 (no .venv-keras2)"]
    try:
        from benchmarks.plots import scaling_bars

        scaling_bars(result, HERE / "results" / "scaling.png")
        result["plot"] = "benchmarks/results/scaling.png"
    except ImportError:  # matplotlib missing: the JSON alone
        pass
    return result
