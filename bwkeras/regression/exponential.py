"""ExponentialRegression: y = N * exp(r * x)."""
import numpy as np
import tensorflow as tf

from .._keras import register_serializable
from .base import NonlinearFamily


@register_serializable(package="bwkeras")
class ExponentialRegression(NonlinearFamily):
    """y = N * exp(r * x); parameters "N" (initially 1) and "r" (initially 0).

    Nonlinear in r: `solve` runs Levenberg-Marquardt from the current parameters, or from
    `initial_guess` (start="guess"), the straight-line fit of log(y) on x.
    """

    def __init__(self, dtype="float32", name=None, trainable=True, **kwargs):
        super().__init__(dtype=dtype, name=name, trainable=trainable, **kwargs)
        self._create_parameters([("N", ["N"], [1.0], False), ("r", ["r"], [0.0], False)])

    def _function(self, x, params):
        N, r = params
        return N * tf.exp(r * x)

    def initial_guess(self, x, y=None, *, batch_size=None, distributed=None):
        """(N, r) from least squares of log(y) = log(N) + r x; needs y of one sign, never 0."""
        from .blocks import BlockSource
        from .linear_solve import least_squares

        sign = {}

        def logged():
            # Built while least_squares iterates, so bad input fails inside its error agreement.
            source = BlockSource(x, y, prepare_x=self._prepare_x, batch_size=batch_size,
                                 check_scale=True)
            for xb, yb in source:
                s = sign.setdefault("s", 1.0 if yb[0] > 0 else -1.0)
                bad = np.flatnonzero(s * yb <= 0)
                if bad.size:
                    raise ValueError(
                        f"the exponential initial guess fits log(y), so y must be all positive "
                        f"(or all negative); got y = {float(yb[bad[0]])!r}. Set starting values with "
                        f"set_params and solve(start='current') instead"
                    )
                yield xb, np.log(s * yb)

        fit = least_squares(logged(), param_names=["log_N", "r"], intercept=True,
                            prepare_x=lambda b, o: b[:, None] if b.ndim == 1 else b,
                            distributed=distributed)
        return np.array([sign.get("s", 1.0) * np.exp(fit.params["log_N"]), fit.params["r"]])
