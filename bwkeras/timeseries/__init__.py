"""Time series: autocorrelation, AR(p), windows for supervised learning, padding.

- `acf(x, nlags)`: sample autocorrelation R_XX.
- `AutoRegression(lags=p, trend="c" | "n")`: AR(p) as a Keras model; `fit` (SGD),
  `solve(series)` (exact least squares), `forecast(steps)`.
- `windows(series, lags, horizon=1, stride=1)`: supervised (X, y), numpy or tf.data.
- `chronological_split`, `Scaler`, `supervised_split`: time-ordered train / validation /
  test parts with scaling fitted on the training part only.
- `pad_sequences`, `step_mask`, `regime_switching`: variable-length labelled sequences.
- `one_step_comparison`: one-step test RMSE of persistence, AR(p) and recurrent networks.
"""
from .._lazy import lazy_attributes

# Loaded on first use (they import TensorFlow), so importing the package costs nothing.
__getattr__, __dir__, __all__ = lazy_attributes(__name__, {
    "acf": ".acf",
    "default_nlags": ".acf",
    "AutoRegression": ".ar",
    "TRENDS": ".ar",
    "windows": ".windows",
    "chronological_split": ".windows",
    "split_sizes": ".windows",
    "Scaler": ".windows",
    "SCALERS": ".windows",
    "SupervisedData": ".windows",
    "supervised_split": ".windows",
    "pad_sequences": ".sequences",
    "step_mask": ".sequences",
    "regime_switching": ".sequences",
    "one_step_comparison": ".compare",
})
