"""The stall watchdog's cost on a healthy run: bwkeras-np2 with and without it.

`horovodrun -np 2 --gloo` trains the scaling benchmark's MLP (784-512-512-10, batch 1024
per rank; benchmarks/scaling_worker.py, bwkeras mode) once with the watchdog on (the
default, BWKERAS_STALL_SECONDS unset) and once with it off (BWKERAS_STALL_SECONDS=0), in
pairs whose order alternates. The watchdog adds a batch-end callback (one clock read) and
a thread that wakes once a second. Reported: the median over pairs of on / off
throughput. Goal: no measurable cost, i.e. the ratio within the pairs' own spread of 1.

    python -m benchmarks watchdog [--quick]
"""
import statistics

from .scaling_bench import configs, run_once

MODEL, BATCH = "mlp", 1024


def run(quick=False):
    steps, pairs = (10, 1) if quick else (40, 6)
    found = configs(MODEL)
    if "bwkeras-np2-gloo" not in found:
        return {"skipped": "horovodrun not found"}
    (argv, env), = found["bwkeras-np2-gloo"]()
    variants = {"watchdog-on": env, "watchdog-off": dict(env, BWKERAS_STALL_SECONDS="0")}
    rates = {name: [] for name in variants}
    ratios = []
    for i in range(pairs):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for name in order:
            rates[name].append(run_once([(argv, variants[name])], steps, BATCH)[0])
        ratios.append(rates["watchdog-on"][-1] / rates["watchdog-off"][-1])
        print(f"  pair {i}: on/off {ratios[-1]:.3f}", flush=True)
    med = statistics.median(ratios)
    return {"model": MODEL, "batch_per_rank": BATCH, "steps": steps, "pairs": pairs,
            "launcher": "horovodrun -np 2 --gloo",
            "samples_per_s_median": {k: statistics.median(v) for k, v in rates.items()},
            "samples_per_s": rates, "ratio_on_off": ratios, "ratio_median": med,
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "measurable": not min(ratios) <= 1.0 <= max(ratios)}
