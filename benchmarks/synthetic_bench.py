"""Synthetic images, in the style of Horovod's tensorflow2_keras_synthetic_benchmark.py.

Horovod publishes its scaling as images per second on random images, per GPU and in
total, for a CNN trained with its Keras wrapper. Here the same measurement on this
machine's CPUs: a small CNN (benchmarks/scaling_worker.py `cnn`: four 3x3 convolutions and
two dense layers on 32x32x3 images, 1.9 MB of gradients; ResNet-50 at 224x224 would take
minutes per step here), batch 64 per process, random images and labels. Horovod's script
times `num_iters` rounds of `num_batches_per_iter` batches after warm-up batches and
prints the mean img/s +- 1.96 std; here each round is a whole launched job (warm-up fit,
then a timed fit of STEPS batches), rounds interleaved over the configurations because
the machine is shared, and the figures are the median and spread of the rounds:

  plain-np1            Keras alone: the baseline
  independent-np2      two plain processes at once: the ceiling for two ranks here
  bwkeras-np2[-gloo]   bwkeras' DistributedOptimizer (buckets), horovodrun -np 2
  stock-horovod-np2[-gloo]   Horovod's own Keras wrapper on the keras2 stack

    python -m benchmarks synthetic [--quick]
"""
from benchmarks import scaling_bench as sb

BATCH = 64
CONFIGS = ("plain-np1", "independent-np2", "bwkeras-np2", "bwkeras-np2-gloo",
           "stock-horovod-np2", "stock-horovod-np2-gloo")


def summarise(samples):
    rows = sb.summarise(samples)
    ceiling = rows["independent-np2"]["samples_per_s_median"]
    for row in rows.values():
        row["img_per_s_per_process"] = row["samples_per_s_median"] / row["np"]
        row["vs_ceiling"] = row["samples_per_s_median"] / ceiling
    return rows


def markdown(result):
    """The docs' table: img/s in total and per process, speedup over plain Keras alone and
    the share of the same-run ceiling, per configuration."""
    from bwkeras.report import markdown_table

    return markdown_table([{"configuration": name, "img/s (median)": row["samples_per_s_median"],
                            "min-max": f"{row['min']:,.0f}-{row['max']:,.0f}",
                            "img/s per process": row["img_per_s_per_process"],
                            "speedup": row["speedup"], "of ceiling": row["vs_ceiling"]}
                           for name, row in result["configs"].items()], floatfmt=".3g")


def run(quick=False):
    steps, repeats = (5, 1) if quick else (20, 3)
    found = {n: f for n, f in sb.configs("cnn").items() if n in CONFIGS}
    rows = summarise(sb.interleaved(found, repeats, steps, BATCH, "cnn", unit="img/s"))
    result = {"model": "cnn", "batch_per_process": BATCH, "steps": steps, "repeats": repeats,
              "baseline": "plain-np1", "ceiling": "independent-np2", "configs": rows,
              "skipped": [] if sb.keras2_python() else ["stock-horovod-* (no .venv-keras2)"]}
    print(markdown(result), flush=True)
    try:
        from benchmarks.plots import scaling_bars

        scaling_bars({"baseline": "plain-np1", "models": {"cnn (img/s)": rows}},
                     sb.HERE / "results" / "synthetic.png")
        result["plot"] = "benchmarks/results/synthetic.png"
    except ImportError:
        pass
    return result
