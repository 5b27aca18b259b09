"""Exact least squares: bwkeras `solve` against numpy.linalg.lstsq and statsmodels OLS.

A degree-5 polynomial on 1e6 rows (float64): wall time (best of 3) and peak memory of each
solver, each measured in its own fresh process, with ratios against bwkeras. The peers get
the Vandermonde design they need built inside the timed region, as a user would; bwkeras
builds it block by block inside `solve`. Then a streamed solve of 2e7 rows generated block
by block (never held in memory): its peak memory against the size of the data.

Peak memory is reported two ways: `peak_alloc_mb`, the peak of Python/numpy allocations
above the starting point (tracemalloc; numpy reports its buffers to it), and
`peak_rss_mb`, the peak resident set size above the starting point, sampled every 2 ms.

    python -m benchmarks solve [--quick]
"""
import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np

DEGREE = 5
TRUTH = np.array([1.0, -0.5, 0.25, 2.0, -1.0, 0.3])
NOISE = 0.1


def _data(rows, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2.0, 2.0, rows)
    y = np.polynomial.polynomial.polyval(x, TRUTH) + rng.normal(0.0, NOISE, rows)
    return x, y


def _rss_mb():
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _RssPeak:
    def __init__(self):
        self.base = _rss_mb()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_mb())
            time.sleep(0.002)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())


def _stream_blocks(rows, block=65536, seed=1):
    """(x, y) blocks generated on the fly: the full data never exist in memory."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < rows:
        m = min(block, rows - done)
        x = rng.uniform(-2.0, 2.0, m)
        yield x, np.polynomial.polynomial.polyval(x, TRUTH) + rng.normal(0.0, NOISE, m)
        done += m


def _method(name):
    if name == "bwkeras":
        from bwkeras.regression import PolynomialRegression

        def solve(x, y):
            r = PolynomialRegression(DEGREE, dtype="float64").solve(x, y)
            return r.params.to_numpy(), r.std_errors.to_numpy()
    elif name == "numpy_lstsq":
        def solve(x, y):
            X = np.vander(x, DEGREE + 1, increasing=True)
            return np.linalg.lstsq(X, y, rcond=None)[0], None
    elif name == "statsmodels_ols":
        import statsmodels.api as sm

        def solve(x, y):
            fit = sm.OLS(y, np.vander(x, DEGREE + 1, increasing=True)).fit()
            return np.asarray(fit.params), np.asarray(fit.bse)
    else:
        raise ValueError(f"unknown method {name!r}")
    return solve


def worker(name, rows, repeats):
    """One method in this (fresh) process; prints a JSON line."""
    if name == "bwkeras_stream":
        from bwkeras.regression import PolynomialRegression

        model = PolynomialRegression(DEGREE, dtype="float64")
        model.solve(*_data(1000))  # import and warm-up outside the measurement
        tracemalloc.start()
        with _RssPeak() as rss:
            t0 = time.perf_counter()
            result = model.solve(_stream_blocks(rows))
            seconds = time.perf_counter() - t0
        alloc = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        params = result.params.to_numpy()
        return {"method": name, "rows": rows, "seconds": seconds,
                "rows_per_second": rows / seconds, "peak_alloc_mb": alloc,
                "peak_rss_mb": rss.peak - rss.base, "params": params.tolist(),
                "std_errors": result.std_errors.tolist(),
                "max_abs_error_vs_truth": float(np.abs(params - TRUTH).max()),
                "max_z_vs_truth": float(np.abs((params - TRUTH) / result.std_errors).max())}
    solve = _method(name)
    x, y = _data(rows)
    solve(x[:1000], y[:1000])  # imports and first-call costs outside the measurement
    tracemalloc.start()
    with _RssPeak() as rss:
        t0 = time.perf_counter()
        params, se = solve(x, y)
        first = time.perf_counter() - t0
    alloc = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times = [first]
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        solve(x, y)
        times.append(time.perf_counter() - t0)
    return {"method": name, "rows": rows, "seconds": min(times), "all_seconds": times,
            "peak_alloc_mb": alloc, "peak_rss_mb": rss.peak - rss.base,
            "params": np.asarray(params).tolist(),
            "std_errors": None if se is None else np.asarray(se).tolist()}


def _spawn(name, rows, repeats):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [sys.executable, "-m", "benchmarks.solve_bench", "--worker", name, str(rows), str(repeats)]
    proc = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick=False):
    rows = 100_000 if quick else 1_000_000
    stream_rows = 1_000_000 if quick else 20_000_000
    methods = {m: _spawn(m, rows, 3) for m in ("bwkeras", "numpy_lstsq", "statsmodels_ols")}
    ref = np.asarray(methods["bwkeras"]["params"])
    for name, res in methods.items():
        res["time_ratio_vs_bwkeras"] = res["seconds"] / methods["bwkeras"]["seconds"]
        res["memory_ratio_vs_bwkeras"] = res["peak_alloc_mb"] / max(methods["bwkeras"]["peak_alloc_mb"], 1e-9)
        res["max_rel_param_diff_vs_bwkeras"] = float(np.max(np.abs(np.asarray(res["params"]) - ref) / np.abs(ref)))
    stream = _spawn("bwkeras_stream", stream_rows, 1)
    data_mb = stream_rows * 2 * 8 / 2**20          # x and y in float64
    design_mb = stream_rows * (DEGREE + 2) * 8 / 2**20  # [design | y] a one-shot QR would need
    stream["data_mb"] = data_mb
    stream["design_mb"] = design_mb
    stream["peak_alloc_fraction_of_data"] = stream["peak_alloc_mb"] / data_mb
    stream["peak_rss_fraction_of_data"] = stream["peak_rss_mb"] / data_mb
    import numpy
    import tensorflow as tf

    try:
        import statsmodels
        sm_version = statsmodels.__version__
    except ImportError:  # pragma: no cover
        sm_version = None
    return {
        "benchmark": "exact least squares, degree-5 polynomial",
        "rows": rows, "in_memory": methods, "streaming": stream,
        "versions": {"numpy": numpy.__version__, "tensorflow": tf.__version__,
                     "statsmodels": sm_version},
        "notes": ("seconds: best of 3 in a fresh process per method, design construction "
                  "included; ratios > 1 mean the peer is slower / uses more memory. The "
                  "streamed solve reads blocks of 65536 rows generated on the fly."),
    }


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
    else:
        print(json.dumps(run(quick="--quick" in sys.argv), indent=2))
