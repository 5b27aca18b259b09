"""RegressionModel: what every regression family shares.

A family is a keras.Model whose weights are its named parameters. It defines
  - its parameter groups: (weight name, parameter names, initial values, vector or scalar),
  - `_function(x, params)`: f(x; theta) with TF ops, where each entry of `params` is either
    the group's value (scalar or vector) or that value repeated once per row (shape
    (n,) or (n, k)); written with broadcasting, one formula serves both the Keras forward
    pass and the per-row Jacobian (see `levenberg_marquardt`),
  - `_prepare_x(array, offset)`: validates a float64 numpy block of inputs,
  - `solve(...)`: the exact (linear) or second-order (nonlinear) fit, written into the weights.

dtype="float64" keeps the forward pass in float64. Note that Keras 3's `fit`/`predict`
convert float64 numpy inputs to floatx (float32) before the model sees them; call the
model directly (`model(x)`) or use `predict_float64` to keep every digit. `solve` always
works in float64.

The weights are created in `__init__` rather than `build`: the number of parameters
follows from the constructor arguments alone, and `params` / `set_params` (e.g. NIST
starting values) must work before the model has seen data.
"""
import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from .._checks import as_float64, param_values
from .._keras import model_config, weight_dtype


class _Slots:
    """Plain holder for the parameter variables, outside Keras' attribute tracking
    (the variables are tracked once, by add_weight)."""

    def __init__(self, variables, groups):
        self.variables = variables
        self.groups = groups


class RegressionModel(keras.Model):
    """Base class of the regression families; not registered, not for direct use."""

    #: "squared" (least squares) or "bernoulli" (maximum likelihood for 0/1 outcomes)
    objective = "squared"
    #: solved by `least_squares` (QR) rather than Levenberg-Marquardt
    linear_in_parameters = False
    #: number of input columns; one feature is given as (n,) or (n, 1) and computed as (n,)
    n_features = 1

    def __init__(self, dtype="float32", name=None, trainable=True, **kwargs):
        dtype = weight_dtype(dtype)
        super().__init__(name=name, dtype=dtype, trainable=trainable, **kwargs)
        self._param_dtype = dtype

    # -- parameters ----------------------------------------------------------------------
    def _create_parameters(self, groups):
        """groups: list of (weight_name, [param names], [initial values], is_vector)."""
        variables = []
        for weight_name, names, initial, vector in groups:
            shape = (len(names),) if vector else ()
            var = self.add_weight(name=weight_name, shape=shape, initializer="zeros",
                                  dtype=self._param_dtype, trainable=True)
            var.assign(np.asarray(initial if vector else initial[0], dtype=self._param_dtype))
            variables.append(var)
        self._slots = _Slots(variables, [(g[0], list(g[1]), bool(g[3])) for g in groups])
        self.built = True

    @property
    def param_names(self):
        return [n for _, names, _ in self._slots.groups for n in names]

    @property
    def group_shapes(self):
        return [((len(names),) if vector else ()) for _, names, vector in self._slots.groups]

    @property
    def params(self):
        """The current parameters as a float64 pandas Series indexed by `param_names`."""
        return pd.Series(self._param_vector(), index=self.param_names, dtype=np.float64,
                         name="params")

    def set_params(self, values):
        """Assign parameters: some or all by name from a mapping or Series (e.g. NIST
        starting values), or all from a sequence in `param_names` order."""
        self._assign_params(param_values(self.param_names, values, current=self._param_vector()))

    def _param_vector(self):
        """The parameters as one float64 vector, in `param_names` order."""
        return np.concatenate([np.ravel(np.asarray(v.numpy(), dtype=np.float64))
                               for v in self._slots.variables])

    def _assign_params(self, vector):
        i = 0
        for var, shape in zip(self._slots.variables, self.group_shapes):
            size = int(np.prod(shape)) if shape else 1
            var.assign(vector[i:i + size].reshape(shape).astype(self._param_dtype))
            i += size

    def _split_params(self, theta):
        """Split a flat float64 vector into per-group tensors (scalars or vectors)."""
        out, i = [], 0
        for shape in self.group_shapes:
            size = shape[0] if shape else 1
            piece = tf.constant(np.asarray(theta[i:i + size], dtype=np.float64).reshape(shape))
            out.append(piece)
            i += size
        return out

    # -- inputs --------------------------------------------------------------------------
    def _prepare_x(self, x, offset=0):
        """Validate one float64 numpy block: (n,) or (n, 1) -> (n,) for one feature, else (n, k)."""
        k = self.n_features
        if k == 1 and x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if k == 1 and x.ndim == 1:
            return x
        if x.ndim == 2 and x.shape[1] == k:
            return x
        got = f"{x.shape[1]} feature column(s) (shape {x.shape})" if x.ndim == 2 else f"shape {x.shape}"
        raise ValueError(
            f"x has {got} but {type(self).__name__} has n_features={k}: expected shape "
            f"{'(n,) or (n, 1)' if k == 1 else f'(n, {k})'}"
        )

    def _prepare_y(self, y, offset=0):
        return y

    def _select_x(self, x):
        """The model's input columns of a raw x (e.g. a DataFrame's, by name); default: x."""
        return x

    def _inputs_tensor(self, inputs):
        x = tf.convert_to_tensor(inputs)
        if x.dtype != self.compute_dtype:
            x = tf.cast(x, self.compute_dtype)
        if self.n_features == 1 and x.shape.rank == 2:
            x = tf.squeeze(x, axis=-1)  # one feature: computed on shape (n,)
        return x

    # -- Keras ---------------------------------------------------------------------------
    def call(self, inputs):
        x = self._inputs_tensor(inputs)
        params = [tf.cast(tf.convert_to_tensor(v), x.dtype) for v in self._slots.variables]
        return self._function(x, params)

    def _function(self, x, params):  # pragma: no cover - abstract
        raise NotImplementedError

    def predict_float64(self, x):
        """f(x; theta) in float64 with the current parameters, as a numpy array."""
        return self._predict_at(x, self._param_vector())

    def _predict_at(self, x, theta):
        """f(x; theta) in float64 for a parameter vector theta (in `param_names` order)."""
        from .blocks import check_finite

        xa = self._prepare_x(as_float64("x", self._select_x(x)))
        check_finite("x", xa)
        out = self._function(tf.constant(xa), self._split_params(np.asarray(theta, dtype=np.float64)))
        return np.reshape(np.asarray(out, dtype=np.float64), (xa.shape[0],))

    def get_config(self):
        """Keras' base config (name, trainable, dtype); each family adds its arguments."""
        return model_config(self, super().get_config)

    # -- solving -------------------------------------------------------------------------
    def _finish(self, result, x=None, y=None):
        """Write the solution into the weights; the result keeps the model (and the data,
        when they are arrays in memory, for resid and fittedvalues)."""
        self._assign_params(result.params.to_numpy())
        return result._with(model=self, data=None if y is None else (x, y))


class LinearFamily(RegressionModel):
    """A family linear in its parameters: y = theta_0 + design(x) theta_1, solved by QR."""

    linear_in_parameters = True

    def _design(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def solve(self, x, y=None, *, sample_weight=None, batch_size=None, distributed=None,
              rcond=None, verbose="auto"):
        """The exact least-squares fit, by orthogonal factorisation in float64.

        x, y: arrays; or y=None and x a tf.data.Dataset / iterable of (x, y) batches,
        streamed once with memory bounded by the batch size. Under a launcher each rank
        passes its own shard and gets the result on all ranks' data (distributed=None);
        distributed=False solves this process's data alone. The solution is written into
        the model's weights. Raises ValueError for a rank-deficient design. verbose: rows
        read on stderr (rank 0) as a stream is solved (True, False, "auto": streams only).
        sample_weight: weights >= 0 for arrays x, y, weighted least squares as statsmodels'
        WLS (a stream carries them as the third element of each batch).
        """
        from .linear_solve import least_squares

        result = least_squares(
            x, y, param_names=self.param_names, intercept=True, design=self._design,
            prepare_x=self._prepare_x, batch_size=batch_size, distributed=distributed,
            rcond=rcond, verbose=verbose, sample_weight=sample_weight,
        )
        return self._finish(result, x, y)


def _check_scale(x, y):
    """ValueError when in-memory x or y reach blocks.SCALE_LIMIT (a streamed source checks
    each of its blocks as it reads it)."""
    from .blocks import check_scale

    if y is None:
        return
    for name, value in (("x", x), ("y", y)):
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return  # not an array: the solver's own checks report it
        check_scale(name, array)


class NonlinearFamily(RegressionModel):
    """A family nonlinear in its parameters, solved by Levenberg-Marquardt."""

    def initial_guess(self, x, y=None, *, batch_size=None, distributed=None):
        raise ValueError(
            f"{type(self).__name__} has no data-driven initial guess; set starting values "
            f"with set_params({{...}}) and solve with start='current'"
        )

    def solve(self, x, y=None, *, start="current", sample_weight=None, batch_size=None,
              distributed=None,
              max_iterations=None, tolerance=1e-10, verbose="auto", acceleration=True,
              bounds=None):
        """The least-squares (or maximum-likelihood) fit by Levenberg-Marquardt in float64.

        start: "current" (the model's parameters, e.g. set from NIST starting values),
        "guess" (a data-driven guess, see `initial_guess`), or a dict name -> value.
        The data are passed over several times: arrays, a tf.data.Dataset or a list of
        (x, y) batches (not a one-shot iterator). Returns a FitResult whose `converged` is
        False, with a ConvergenceWarning naming the reason (`stop_reason`) and what to try,
        when the solve stopped short: neither the relative offset reached `tolerance` nor
        R became minimal to working precision within `max_iterations` accepted steps
        (default 1000 (p + 1), see `lm_core.default_budget`). The result (the last iterate if
        not converged) is written into the model's weights. sample_weight: weights >= 0
        for arrays x, y: minimise sum_i w_i (y_i - f_i)^2 (a stream carries them as the
        third element of each batch). acceleration: geodesic acceleration (default on).
        bounds: dict name -> (lower, upper), None for an open side, e.g. {"b1": (0, None)}:
        the solve keeps those parameters within them (projected steps, see `lm_core`); the
        result's `active_bounds` names any held on a bound (see FitResult). A start outside
        them is a ValueError; start="guess" is moved onto the nearest bound.
        """
        from .levenberg_marquardt import levenberg_marquardt

        _check_scale(x, y)
        if isinstance(start, str) and start == "current":
            theta0 = self._param_vector()
        elif isinstance(start, str) and start == "guess":
            theta0 = self.initial_guess(x, y, batch_size=batch_size, distributed=distributed)
        elif isinstance(start, dict):
            theta0 = param_values(self.param_names, start, current=self._param_vector(),
                                  name="start")
        else:
            raise ValueError(f"start must be 'current', 'guess' or a dict name -> value, got {start!r}")
        try:
            result = levenberg_marquardt(
                self, x, y, start=theta0, objective=self.objective, batch_size=batch_size,
                distributed=distributed, max_iterations=max_iterations, tolerance=tolerance,
                verbose=verbose, acceleration=acceleration, sample_weight=sample_weight,
                bounds=bounds, project_start=isinstance(start, str) and start == "guess",
            )
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                f"{type(self).__name__}.solve failed in its linear algebra ({exc}): the data "
                f"or the starting values are most likely badly scaled; rescale x and y to "
                f"values of order 1 (e.g. divide by their standard deviations)") from None
        return self._finish(result, x, y)
