"""ParametricRegression: any y = f(x; theta) written as a formula."""
from .._checks import real
from .._keras import register_serializable
from .base import NonlinearFamily
from .expression import Expression


@register_serializable(package="bwkeras")
class ParametricRegression(NonlinearFamily):
    """y = f(x; theta) for a formula over x and named parameters, e.g.

        ParametricRegression("b1*(1-exp(-b2*x))", {"b1": 500.0, "b2": 1e-4})

    params: dict name -> starting value (or a list of names, all starting at 1.0). The
    formula may use numbers, x, the parameters, pi, + - * / ** and exp, log, sqrt, sin, cos,
    arctan; it is parsed with a whitelist (see `bwkeras.regression.expression`), never
    evaluated as Python, so a saved model is safe to load. One scalar weight per parameter,
    named after it.
    """

    def __init__(self, expression, params, dtype="float32", name=None, trainable=True, **kwargs):
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
        parsed = Expression(expression, [k for k, _ in items])
        super().__init__(dtype=dtype, name=name, trainable=trainable, **kwargs)
        self.expression = parsed
        self._initial = dict(items)
        self._create_parameters([(k, [k], [v], False) for k, v in items])

    def _function(self, x, params):
        return self.expression.evaluate(x, dict(zip(self.expression.param_names, params)))

    def get_config(self):
        return {**super().get_config(), "expression": self.expression.text,
                "params": dict(self._initial)}
