"""LinearRegression: y = m*x + b (one feature) or y = b + sum_j m_j x_j."""
import tensorflow as tf

from .._checks import integer
from .._keras import register_serializable
from .base import LinearFamily


@register_serializable(package="bwkeras")
class LinearRegression(LinearFamily):
    """y = m*x + b, or y = b + m_1 x_1 + ... + m_k x_k for n_features=k.

    Parameters "b", "m" (one feature) or "b", "m_1".."m_k"; weights "b" (scalar) and "m"
    (scalar, or a vector of k). x: shape (n,) or (n, 1) for one feature, (n, k) otherwise.
    """

    def __init__(self, n_features=1, dtype="float32", name=None, trainable=True, **kwargs):
        super().__init__(dtype=dtype, name=name, trainable=trainable, **kwargs)
        self.n_features = integer("n_features", n_features, minimum=1)
        k = self.n_features
        if k == 1:
            slopes = ("m", ["m"], [0.0], False)
        else:
            slopes = ("m", [f"m_{j}" for j in range(1, k + 1)], [0.0] * k, True)
        self._create_parameters([("b", ["b"], [0.0], False), slopes])

    def _function(self, x, params):
        b, m = params
        if self.n_features == 1:
            return b + m * x
        return b + tf.reduce_sum(x * m, axis=-1)

    def _design(self, x):
        return x[:, None] if x.ndim == 1 else x

    def get_config(self):
        return {**super().get_config(), "n_features": self.n_features}
