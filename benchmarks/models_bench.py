"""bwkeras models against the same architecture written directly in Keras.

Training throughput (samples/s of `fit`) of `RecurrentForecaster(cell="lstm")` and of
`MLP` next to a `keras.Sequential` of the same layers, sizes, initial weights and
optimizer, in the same process. After one warm-up epoch each (tracing), the two train
whole epochs in alternation (back-to-back pairs, which one goes first alternating), so
drifts in machine load hit both alike; the ratio is the median over the pairs of
ours / plain throughput (the issue's bar: >= 0.97). `pair_ratio_quartiles` shows how far
the machine's noise alone moves a single pair.

    python -m benchmarks models [--quick]
"""
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

TARGET_RATIO = 0.97


def _setup_threads(threads):
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _epoch_rates(ours, plain, x, y, batch_size, repeats, chunks=1):
    """Throughput of `fit` for both models, measured in interleaved pieces.

    Each epoch is run as `chunks` consecutive `fit` calls on slices of the data, and the
    two models alternate slice by slice (which one goes first alternating too), so a
    burst of other work on a shared machine lands on both about equally. Rates are
    samples per second of whole epochs (the sum of a model's slice times). chunks > 1
    pairs more finely but adds `fit`'s fixed start-up cost (tens of ms) to every slice of
    both models, which dilutes any difference between them: the default is whole epochs.
    """
    for model in (ours, plain):  # warm-up: trace and build the train function
        model.fit(x, y, epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
    bounds = np.linspace(0, len(x) // batch_size, chunks + 1).astype(int) * batch_size
    slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    rates = {"bwkeras": [], "keras": []}
    pair_ratios = []
    for i in range(repeats):
        elapsed = {"bwkeras": 0.0, "keras": 0.0}
        for j, part in enumerate(slices):
            pair = (("bwkeras", ours), ("keras", plain))
            seconds = {}
            for name, model in pair if (i + j) % 2 == 0 else pair[::-1]:
                start = time.perf_counter()
                model.fit(x[part], y[part], epochs=1, batch_size=batch_size, shuffle=False,
                          verbose=0)
                seconds[name] = time.perf_counter() - start
                elapsed[name] += seconds[name]
            pair_ratios.append(seconds["keras"] / seconds["bwkeras"])
        for name in rates:
            rates[name].append(bounds[-1] / elapsed[name])
    ours_rate = statistics.median(rates["bwkeras"])
    plain_rate = statistics.median(rates["keras"])
    # Each pair ran back to back under the same load: the median of the pair ratios is
    # the figure least moved by other work on the machine.
    ratio = statistics.median(pair_ratios)
    quartiles = statistics.quantiles(pair_ratios, n=4)
    return {
        "bwkeras_samples_per_s": ours_rate,
        "keras_samples_per_s": plain_rate,
        "ratio": ratio,
        "ratio_of_median_epochs": ours_rate / plain_rate,
        "ratio_best_epochs": max(rates["bwkeras"]) / max(rates["keras"]),
        # Spread of the pair ratios: how much of the ratio the machine's noise can explain.
        "pair_ratio_quartiles": [quartiles[0], quartiles[2]],
        "pairs": len(pair_ratios),
        "meets_target": ratio >= TARGET_RATIO,
        "epochs_bwkeras": rates["bwkeras"],
        "epochs_keras": rates["keras"],
    }


def lstm_case(quick):
    import keras

    from bwkeras.models import RecurrentForecaster

    n, lags, units, batch = (2048, 16, 32, 128) if quick else (8192, 32, 64, 256)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, lags, 1)).astype(np.float32)
    y = rng.normal(size=(n, 1)).astype(np.float32)
    keras.utils.set_random_seed(0)
    ours = RecurrentForecaster(cell="lstm", units=units)
    plain = keras.Sequential([
        keras.Input(shape=(lags, 1)),
        keras.layers.LSTM(units=units),
        keras.layers.Dense(units=1),
    ])
    ours(x[:1])
    plain.set_weights(ours.get_weights())
    for model in (ours, plain):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    config = {"samples": n, "lags": lags, "units": units, "batch_size": batch}
    return ours, plain, x, y, batch, config


def mlp_case(quick):
    import keras

    from bwkeras.models import MLP

    n, features, hidden, batch = (4096, 784, (256, 256), 512) if quick else \
        (16384, 784, (512, 512), 1024)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    keras.utils.set_random_seed(1)
    ours = MLP(hidden_units=hidden, activation="relu", output="softmax", n_outputs=10)
    plain = keras.Sequential(
        [keras.Input(shape=(features,))]
        + [keras.layers.Dense(units=u, activation="relu") for u in hidden]
        + [keras.layers.Dense(units=10, activation="softmax")]
    )
    ours(x[:1])
    plain.set_weights(ours.get_weights())
    for model in (ours, plain):
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                      loss="sparse_categorical_crossentropy")
    config = {"samples": n, "features": features, "hidden_units": list(hidden), "batch_size": batch}
    return ours, plain, x, y, batch, config


def run(quick=False):
    import keras
    import tensorflow as tf

    threads = int(os.environ.get("BENCH_THREADS", "1"))
    _setup_threads(threads)
    repeats = 3 if quick else 11
    result = {
        "benchmark": "models",
        "what": "training throughput of bwkeras models vs the same layers in plain Keras",
        "target_ratio": TARGET_RATIO,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tf_threads": threads,
        "repeats": repeats,
        "cases": {},
    }
    for name, case in (("lstm_forecaster", lstm_case), ("mlp", mlp_case)):
        ours, plain, x, y, batch, config = case(quick)
        entry = {"config": config}
        entry.update(_epoch_rates(ours, plain, x, y, batch, repeats))
        result["cases"][name] = entry
        print(f"{name}: ratio {entry['ratio']:.3f} "
              f"({entry['bwkeras_samples_per_s']:.0f} vs {entry['keras_samples_per_s']:.0f} samples/s)",
              flush=True)
    result["meets_target"] = all(c["meets_target"] for c in result["cases"].values())
    return result


if __name__ == "__main__":  # also runnable alone: python -m benchmarks.models_bench [--quick]
    import json
    import pathlib
    import sys

    out = run(quick="--quick" in sys.argv[1:])
    path = pathlib.Path(__file__).parent / "results" / "models.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2, default=float))
    print(f"-> {path}")
