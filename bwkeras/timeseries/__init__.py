"""Time series: autocorrelation, AR(p), windows for supervised learning, padding.

- `acf(x, nlags)`: sample autocorrelation R_XX.
- `AutoRegression(lags=p, trend="c" | "n")`: AR(p) as a Keras model; `fit` (SGD),
  `solve(series)` (exact least squares), `forecast(steps)`.
- `windows(series, lags, horizon=1, stride=1)`: supervised (X, y), numpy or tf.data.
- `chronological_split`, `Scaler`, `supervised_split`: time-ordered train / validation /
  test parts with scaling fitted on the training part only.
- `pad_sequences`, `step_mask`, `regime_switching`: variable-length labelled sequences.
- `one_step_comparison`: one-step test RMSE of persistence, AR(p) and recurrent networks;
  `one_step_baselines` and `one_step_scores`, its parts, for code that trains its own.
"""
from .acf import acf, default_nlags
from .ar import TRENDS, AutoRegression
from .compare import one_step_baselines, one_step_comparison, one_step_scores, rmse
from .sequences import pad_sequences, regime_switching, step_mask
from .windows import SCALERS, Scaler, SupervisedData, chronological_split, split_sizes, \
    supervised_split, windows

__all__ = [
    "acf", "default_nlags", "AutoRegression", "TRENDS", "windows", "chronological_split",
    "split_sizes", "Scaler", "SCALERS", "SupervisedData", "supervised_split", "pad_sequences",
    "step_mask", "regime_switching", "one_step_comparison", "one_step_baselines",
    "one_step_scores", "rmse",
]
