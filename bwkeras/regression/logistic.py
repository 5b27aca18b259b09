"""LogisticRegression: y = 1 / (1 + exp(-(a + b x))), by least squares or maximum likelihood."""
import numpy as np
import tensorflow as tf

from .._checks import choice, integer
from .._keras import register_serializable
from .base import NonlinearFamily

LOSSES = ("squared", "binary_crossentropy")


@register_serializable(package="bwkeras")
class LogisticRegression(NonlinearFamily):
    """y = 1 / (1 + exp(-(a + b*x))), or with b_1 x_1 + ... + b_k x_k for n_features=k.

    Parameters "a", "b" (one feature) or "a", "b_1".."b_k".
    loss="squared": the tutorial's R = sum (y - f)^2, solved by Levenberg-Marquardt.
    loss="binary_crossentropy": maximum likelihood for 0/1 outcomes (statistical logistic
    regression), solved by Fisher scoring (Newton); y must lie in [0, 1]. Compile with the
    matching Keras loss ("mse" or "binary_crossentropy") to train it with `fit`.
    """

    def __init__(self, n_features=1, loss="squared", dtype="float32", name=None, trainable=True,
                 **kwargs):
        super().__init__(dtype=dtype, name=name, trainable=trainable, **kwargs)
        self.n_features = integer("n_features", n_features, minimum=1)
        self.loss_name = choice("loss", loss, LOSSES)
        self.objective = "squared" if loss == "squared" else "bernoulli"
        k = self.n_features
        if k == 1:
            slopes = ("b", ["b"], [0.0], False)
        else:
            slopes = ("b", [f"b_{j}" for j in range(1, k + 1)], [0.0] * k, True)
        self._create_parameters([("a", ["a"], [0.0], False), slopes])

    def _function(self, x, params):
        a, b = params
        eta = a + (b * x if self.n_features == 1 else tf.reduce_sum(x * b, axis=-1))
        return tf.sigmoid(eta)

    def _prepare_y(self, y, offset=0):
        if self.objective == "bernoulli":
            bad = np.flatnonzero((y < 0) | (y > 1))
            if bad.size:
                raise ValueError(
                    f"loss='binary_crossentropy' needs outcomes in [0, 1] (0/1 or proportions); "
                    f"got y = {float(y[bad[0]])!r} at row {offset + int(bad[0])}"
                )
        return y

    def initial_guess(self, x, y=None, *, batch_size=None, distributed=None):
        """Maximum likelihood: all zeros (p = 1/2), from which Newton's method converges for
        any non-separable data. Least squares: the straight-line fit of logit(y) on x, with
        y clipped into [0.01, 0.99]."""
        if self.objective == "bernoulli":
            return np.zeros(len(self.param_names))
        from .blocks import BlockSource
        from .linear_solve import least_squares

        def logits():
            source = BlockSource(x, y, prepare_x=self._prepare_x, batch_size=batch_size,
                                 check_scale=True)
            for xb, yb in source:
                q = np.clip(yb, 0.01, 0.99)
                yield xb, np.log(q / (1.0 - q))

        fit = least_squares(logits(), param_names=self.param_names, intercept=True,
                            prepare_x=lambda b, o: b[:, None] if b.ndim == 1 else b,
                            distributed=distributed)
        return fit.params.to_numpy()

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features, "loss": self.loss_name}
