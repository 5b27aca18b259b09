"""PolynomialRegression: y = a_0 + a_1 x + ... + a_n x^n."""
import numpy as np

from .._checks import integer
from .._keras import register_serializable
from .base import LinearFamily

# d + 1 parameters, d + 1 float64 columns per row and a (d + 2)^2 R factor: degree 10000
# already needs 800 MB for R alone, far past any data set's support for it.
MAX_DEGREE = 10_000


@register_serializable(package="bwkeras")
class PolynomialRegression(LinearFamily):
    """y = sum_{i=0}^{degree} a_i x^i. Parameters "a_0".."a_n", held in one weight "a".

    The forward pass uses Horner's rule. `solve` centres and scales the power columns
    before the QR factorisation, which keeps high-degree fits (Wampler, Filip) accurate.
    """

    def __init__(self, degree, dtype="float32", name=None, trainable=True, **kwargs):
        super().__init__(dtype=dtype, name=name, trainable=trainable, **kwargs)
        self.degree = integer("degree", degree, minimum=0)
        if self.degree > MAX_DEGREE:
            raise ValueError(f"degree must be at most {MAX_DEGREE} (degree + 1 parameters, each "
                             f"needing an observation), got {self.degree}")
        n = self.degree
        self._create_parameters([("a", [f"a_{i}" for i in range(n + 1)], [0.0] * (n + 1), True)])

    def _function(self, x, params):
        (a,) = params
        y = a[..., self.degree] + 0.0 * x
        for i in range(self.degree - 1, -1, -1):
            y = y * x + a[..., i]
        return y

    def _design(self, x):
        """Columns x, x^2, ..., x^n by repeated multiplication (much faster than pow)."""
        D = np.empty((x.shape[0], self.degree))
        if self.degree:
            D[:, 0] = x
            for i in range(1, self.degree):
                np.multiply(D[:, i - 1], x, out=D[:, i])
        return D

    def get_config(self):
        return {**super().get_config(), "degree": self.degree}
