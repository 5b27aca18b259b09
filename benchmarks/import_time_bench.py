"""What `import bwkeras` adds to `import tensorflow, keras`, in fresh interpreters.

Three statements, each timed in a new Python process (wall clock, interpreter start
included), interleaved and repeated; medians reported:
  baseline   import tensorflow, keras
  bwkeras    import tensorflow, keras, bwkeras            (goal: <= 10% over baseline)
  full       ... bwkeras.models, regression, timeseries, distributed (Horovod stays
             unimported without a launcher), for information.

    python -m benchmarks import_time [--quick]
"""
import os
import statistics
import subprocess
import sys
import time

from .scaling_bench import ENV

GOAL = 1.10
STATEMENTS = {
    "baseline": "import tensorflow, keras",
    "bwkeras": "import tensorflow, keras, bwkeras",
    "full": "import tensorflow, keras, bwkeras.models, bwkeras.regression, bwkeras.timeseries, "
            "bwkeras.distributed",
}


def time_once(statement):
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], env=dict(os.environ, **ENV), check=True,
                   capture_output=True, timeout=300)
    return time.perf_counter() - started


def run(quick=False):
    repeats = 2 if quick else 9
    seconds = {name: [] for name in STATEMENTS}
    for i in range(repeats):
        names = list(STATEMENTS) if i % 2 == 0 else list(reversed(STATEMENTS))
        for name in names:
            seconds[name].append(time_once(STATEMENTS[name]))
    med = {name: statistics.median(v) for name, v in seconds.items()}
    result = {"goal_ratio": GOAL, "repeats": repeats, "statements": STATEMENTS,
              "seconds_median": med, "seconds": seconds,
              "ratio": {name: med[name] / med["baseline"] for name in STATEMENTS}}
    result["meets_goal"] = result["ratio"]["bwkeras"] <= GOAL
    for name in STATEMENTS:
        print(f"  {name}: {med[name]:.2f} s ({result['ratio'][name]:.3f} x baseline)", flush=True)
    return result
