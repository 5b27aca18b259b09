"""Bucketed, overlapped gradient exchange at np=2 on one host, against the same-run ceiling.

For the scaling benchmark's MLP and LSTM (benchmarks/scaling_worker.py), each np=2 job
started as `horovodrun -np 2` (MPI, and --gloo):

  plain-np1          plain Keras alone: the baseline
  independent-np2    two plain processes at once, no communication: the ceiling
  bwkeras-np2[-gloo]             bwkeras' default buckets (DEFAULT_BUCKET_BYTES)
  bwkeras-np2[-gloo]-grouped     one grouped allreduce after backprop (bucket_bytes=None)
  bwkeras-np2-gloo-256k          256 KiB buckets (MLP: the bucket-size choice)
  stock-horovod-np2[-gloo]       Horovod's own Keras 2 wrapper (per-tensor ops), keras2 stack
  bwkeras-keras2-np2[-gloo]      bwkeras on the keras2 stack (Horovod's wrapper underneath)

Throughput: rounds interleaved (forward, then reversed order), median and spread; the
ratio to the ceiling is median(config) / median(independent-np2) of the same run.
Overlap: one more run of every np=2 job with a Horovod timeline, read by
benchmarks.timeline (the fraction of the exchange that ran before the last gradient
existed on every rank; median over steps).

    python -m benchmarks overlap [--quick] [--models mlp,lstm]
"""
import os
import sys
import tempfile

from benchmarks import scaling_bench as sb
from benchmarks import timeline

GOALS = {"mpi": 0.95, "gloo": 0.90}   # bwkeras / ceiling, the goals


def configs(model):
    """name -> function returning [(argv, extra env)], as scaling_bench.configs."""
    py, k2 = sys.executable, sb.keras2_python()
    found = {
        "plain-np1": lambda: [([py, sb.WORKER, "plain", model], sb.ONE_THREAD)],
        "independent-np2": lambda: [([py, sb.WORKER, "plain", model], sb.ONE_THREAD)] * 2,
    }
    hvdrun = sb._tool(py, "horovodrun")
    if hvdrun:
        for transport, flag in (("", []), ("-gloo", ["--gloo"])):
            line = [hvdrun, "-np", "2", "-H", "localhost:2", *flag, py, sb.WORKER, "bwkeras", model]
            found[f"bwkeras-np2{transport}"] = lambda line=line: [(line, {})]
            found[f"bwkeras-np2{transport}-grouped"] = lambda line=line: [(line, {"BENCH_BUCKET": "none"})]
        if model == "mlp":
            line = [hvdrun, "-np", "2", "-H", "localhost:2", "--gloo", py, sb.WORKER, "bwkeras", model]
            found["bwkeras-np2-gloo-256k"] = lambda: [(line, {"BENCH_BUCKET": str(256 << 10)})]
    if k2 and sb._tool(k2, "horovodrun"):
        for transport, flag in (("", []), ("-gloo", ["--gloo"])):
            head = [sb._tool(k2, "horovodrun"), "-np", "2", "-H", "localhost:2", *flag, k2, sb.WORKER]
            found[f"stock-horovod-np2{transport}"] = lambda head=head: [(head + ["stock", model], {})]
            found[f"bwkeras-keras2-np2{transport}"] = lambda head=head: [(head + ["bwkeras", model], {})]
    return found


def measure_overlap(jobs, steps, batch):
    """The timeline's overlap figures for one run of the launched job `jobs`."""
    (argv, extra), = jobs
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "timeline.json")
        # horovodrun passes HOROVOD_TIMELINE on to the ranks; rank 0 writes the file
        sb.run_once([(argv, dict(extra, HOROVOD_TIMELINE=path))], steps, batch)
        return timeline.overlap(timeline.load(path))


def summarise(samples):
    rows = sb.summarise(samples)
    ceiling = rows["independent-np2"]["samples_per_s_median"]
    for name, row in rows.items():
        row["vs_ceiling"] = row["samples_per_s_median"] / ceiling
        row["vs_ceiling_min"] = row["min"] / ceiling
        row["vs_ceiling_max"] = row["max"] / ceiling
    return rows


def goals(rows):
    """The issue's goals, each with the figure it is judged on."""
    out = {}
    for transport, goal in GOALS.items():
        name = "bwkeras-np2" if transport == "mpi" else "bwkeras-np2-gloo"
        if name in rows:
            out[f"{name} >= {goal} of ceiling"] = {"value": rows[name]["vs_ceiling"],
                                                   "met": rows[name]["vs_ceiling"] >= goal}
        stock = name.replace("bwkeras", "stock-horovod")
        if name in rows and stock in rows:
            out[f"{name} >= {stock}"] = {
                "value": rows[name]["samples_per_s_median"] / rows[stock]["samples_per_s_median"],
                "met": rows[name]["samples_per_s_median"] >= rows[stock]["samples_per_s_median"]}
    return out


def markdown(result):
    """The docs' tables: per model and configuration, throughput against the ceiling and
    the share of the exchange that ran during backprop; then the goals."""
    from bwkeras.report import markdown_table

    jobs, judged = [], []
    for model, doc in result["models"].items():
        for name, row in doc["configs"].items():
            share = row.get("overlap")
            jobs.append({"model": model, "configuration": name,
                         "samples/s (median)": round(row["samples_per_s_median"]),
                         "min-max": f"{row['min']:,.0f}-{row['max']:,.0f}",
                         "of ceiling": row["vs_ceiling"],
                         "overlap": f"{share['overlap']:.2f} ({share['overlap_min']:.2f}-{share['overlap_max']:.2f})"
                         if share else "",
                         "exchange ms": share["exchange_ms"] if share else ""})
        for goal, verdict in doc["goals"].items():
            judged.append({"model": model, "goal": goal, "value": verdict["value"],
                           "met": "yes" if verdict["met"] else "no"})
    table = markdown_table(jobs, floatfmt=".3g")
    return table + "\n\n" + markdown_table(judged, floatfmt=".3g") if judged else table


def run(quick=False, models=None):
    from bwkeras.distributed.optimizer import DEFAULT_BUCKET_BYTES

    steps, repeats = (10, 1) if quick else (40, 3)
    if models and set(models) - set(sb.MODELS):
        raise SystemExit(f"benchmarks overlap: unknown models {sorted(set(models) - set(sb.MODELS))}; "
                         f"expected some of {list(sb.MODELS)}")
    models = models or (["mlp"] if quick else list(sb.MODELS))
    result = {"steps": steps, "repeats": repeats, "ceiling": "independent-np2",
              "bucket_bytes_default": DEFAULT_BUCKET_BYTES, "models": {}}
    for model in models:
        found = configs(model)
        batch = sb.MODELS[model]
        rows = summarise(sb.interleaved(found, repeats, steps, batch, model))
        for name in found:
            if "-np" in found[name]()[0][0]:  # the launched jobs (horovodrun -np 2)
                rows[name]["overlap"] = measure_overlap(found[name](), max(steps, 20), batch)
                print(f"  {model} {name}: overlap {rows[name]['overlap']['overlap']:.2f}", flush=True)
        result["models"][model] = {"configs": rows, "goals": goals(rows)}
    result["skipped"] = [] if sb.keras2_python() else ["stock-horovod*, bwkeras-keras2* (no .venv-keras2)"]
    print(markdown(result), flush=True)
    try:
        from benchmarks.plots import overlap_bars

        overlap_bars(result, sb.HERE / "results" / "overlap.png")
        result["plot"] = "benchmarks/results/overlap.png"
    except ImportError:
        pass
    return result
