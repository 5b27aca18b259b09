"""bwkeras' cost in a single process: its models and distributed wrapper against plain Keras.

bwkeras-np1 (bwkeras.models MLP / RecurrentForecaster, DistributedOptimizer, callbacks; no
launcher) and plain-np1 (the same networks in keras.Sequential) run one after the other,
one TF thread each, and the pair repeats with the order alternating. The ratio of each pair
is bwkeras / plain throughput; the median ratio over pairs is reported (pairs cancel the
machine's slow drifts). Goal: >= 0.97 for both models.

    python -m benchmarks overhead [--quick]
"""
import statistics

from .scaling_bench import MODELS, configs, run_once

GOAL = 0.97


def run(quick=False):
    steps, pairs = (10, 2) if quick else (40, 7)
    result = {"goal": GOAL, "steps": steps, "pairs": pairs, "models": {}}
    for model in MODELS:
        found = configs(model)
        ratios, rates = [], {"plain-np1": [], "bwkeras-np1": []}
        for i in range(pairs):
            order = ["plain-np1", "bwkeras-np1"] if i % 2 == 0 else ["bwkeras-np1", "plain-np1"]
            for name in order:
                rates[name].append(run_once(found[name](), steps, MODELS[model])[0])
            ratios.append(rates["bwkeras-np1"][-1] / rates["plain-np1"][-1])
            print(f"  {model} pair {i}: ratio {ratios[-1]:.3f}", flush=True)
        med = statistics.median(ratios)
        result["models"][model] = {
            "ratio_median": med, "ratio_min": min(ratios), "ratio_max": max(ratios), "ratios": ratios,
            "samples_per_s": {k: statistics.median(v) for k, v in rates.items()}, "meets_goal": med >= GOAL,
        }
    return result
