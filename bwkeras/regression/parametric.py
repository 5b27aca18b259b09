"""ParametricRegression: any y = f(x; theta) written as a formula."""
from .._checks import real
from .._keras import register_serializable
from .base import NonlinearFamily
from .expression import VARIABLE, Expression, check_variables


@register_serializable(package="bwkeras")
class ParametricRegression(NonlinearFamily):
    """y = f(x; theta) for a formula over x and named parameters, e.g.

        ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 500.0, "b2": 1e-4})

    params: dict name -> starting value (or a list of names, all starting at 1.0). The
    formula may use numbers, x, the parameters, pi, + - * / ** and exp, log, sqrt, sin, cos,
    arctan; it is parsed with a whitelist (see `bwkeras.regression.expression`), never
    evaluated as Python, so a saved model is safe to load. One scalar weight per parameter,
    named after it.

    inputs: the names of the input variables, default ("x",). With several, e.g.

        ParametricRegression("b1 - b2*x1*exp(-b3*x2)", {...}, inputs=("x1", "x2"))

    x is an (n, k) array whose columns are the inputs in this order, or a pandas DataFrame
    holding columns of those names (any order, other columns ignored). The names are kept
    as `feature_names`.
    """

    def __init__(self, expression, params, inputs=None, dtype="float32", name=None,
                 trainable=True, **kwargs):
        if isinstance(params, dict):
            items = list(params.items())
        elif isinstance(params, (list, tuple)) and all(isinstance(p, str) for p in params):
            items = [(p, 1.0) for p in params]
        else:
            raise TypeError(
                f"params must be a dict name -> starting value or a list of names, got {params!r}"
            )
        if not items:
            raise ValueError("params is empty: the formula needs at least one parameter")
        items = [(key, real(f"starting value of parameter {key!r}", value)) for key, value in items]
        variables = (VARIABLE,) if inputs is None else check_variables(inputs, [k for k, _ in items])
        parsed = Expression(expression, [k for k, _ in items], variables=variables)
        super().__init__(dtype=dtype, name=name, trainable=trainable, **kwargs)
        self.expression = parsed
        self.feature_names = variables
        self._named_inputs = inputs is not None
        self.n_features = len(variables)
        self._initial = dict(items)
        self._create_parameters([(k, [k], [v], False) for k, v in items])

    def _function(self, x, params):
        return self.expression.evaluate(x, dict(zip(self.expression.param_names, params)))

    def _select_x(self, x):
        """A DataFrame's input columns, by name, in `inputs` order (other x as given)."""
        import pandas as pd

        if isinstance(x, pd.DataFrame) and (self._named_inputs or VARIABLE in x.columns):
            missing = [v for v in self.feature_names if v not in x.columns]
            if missing:
                raise ValueError(
                    f"x (a DataFrame with columns {list(x.columns)}) lacks the input column(s) "
                    f"{missing} of inputs={list(self.feature_names)}"
                )
            return x[list(self.feature_names)]
        return x

    def get_config(self):
        config = {**super().get_config(), "expression": self.expression.text,
                  "params": dict(self._initial)}
        if self._named_inputs:
            config["inputs"] = list(self.feature_names)
        return config
