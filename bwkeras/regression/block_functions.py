"""A model's f(x; theta), its Jacobian and curvature as traced TensorFlow functions on
blocks of rows: what the Levenberg-Marquardt solve and the delta-method intervals of a
fit result both evaluate (kept apart so that neither imports the other)."""
import numpy as np
import tensorflow as tf


def _split(theta, shapes):
    """A float64 parameter vector (tensor) as the model's groups (scalars or vectors)."""
    out, i = [], 0
    for shape in shapes:
        size = shape[0] if shape else 1
        out.append(tf.reshape(theta[i:i + size], shape))
        i += size
    return out


class BlockFunctions:
    """f, its Jacobian and its curvature along a direction on one block of rows, each a
    tf.function traced once per model (rows of any number, float64 throughout).

    values(x, theta) -> f (n,)
    jacobian(x, theta) -> (f, J): J_ij = d f_i / d theta_j by reverse-mode autodiff in one
        pass: each row gets its own copy of the parameters, so the gradient of sum_i f_i
        with respect to row i's copy is row i of the Jacobian.
    pullback(x, theta, w) -> J^T w, by one reverse pass of sum_i f_i w_i (w held fixed).
    curvature(x, theta, v, c) -> J^T (c * f_vv): f_vv, the second directional derivative
        of f along v, by the central difference (f(theta + h v) - 2 f + f(theta - h v)) / h^2
        with h = 0.1, Transtrum and Sethna's choice (the acceleration needs f_vv to a few
        digits, not to working precision); c a per-row weight.
    """

    def __init__(self, function, shapes, x_shape):
        self.function, self.shapes = function, list(shapes)
        p = sum(s[0] if s else 1 for s in self.shapes)
        xs = tf.TensorSpec((None,) + tuple(x_shape[1:]), tf.float64)
        ts = tf.TensorSpec((p,), tf.float64)
        rows = tf.TensorSpec((None,), tf.float64)
        self.values = tf.function(self._values, input_signature=[xs, ts])
        self.jacobian = tf.function(self._jacobian, input_signature=[xs, ts])
        self.pullback = tf.function(self._pullback, input_signature=[xs, ts, rows])

    def _f(self, x, pieces):
        return tf.reshape(self.function(x, pieces), (-1,))

    def _values(self, x, theta):
        return self._f(x, _split(theta, self.shapes))

    def _jacobian(self, x, theta):
        n = tf.shape(x)[0]
        tiled = [tf.broadcast_to(piece, tf.concat([[n], tf.shape(piece)], 0))
                 for piece in _split(theta, self.shapes)]
        with tf.GradientTape() as tape:
            for t in tiled:
                tape.watch(t)
            f = self._f(x, tiled)
        grads = tape.gradient(f, tiled, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        J = tf.concat([tf.reshape(g, (n, -1)) for g in grads], axis=1)
        return f, J

    def _pullback(self, x, theta, w):
        pieces = _split(theta, self.shapes)
        with tf.GradientTape() as tape:
            tape.watch(pieces)
            total = tf.reduce_sum(self._f(x, pieces) * w)
        grads = tape.gradient(total, pieces, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return tf.concat([tf.reshape(g, (-1,)) for g in grads], axis=0)

    def curvature(self, x, theta, v, c, h=0.1):
        f0 = self.values(x, theta).numpy()
        fvv = (self.values(x, theta + h * v).numpy() - 2.0 * f0
               + self.values(x, theta - h * v).numpy()) / (h * h)
        if not np.isfinite(fvv).all():
            return np.full(len(theta), np.inf)
        return self.pullback(x, theta, c * fvv).numpy()
