"""The whitelisted formula parser behind ParametricRegression."""
import numpy as np
import pytest
import tensorflow as tf

from bwkeras.regression import Expression, ParametricRegression


@pytest.mark.parametrize("text,params,reference", [
    ("b1*(1-exp(-b2*x))", {"b1": 2.0, "b2": 0.7}, lambda x: 2.0 * (1 - np.exp(-0.7 * x))),
    ("b1/(1+exp(b2-b3*x))", {"b1": 72.0, "b2": 2.6, "b3": 0.07}, lambda x: 72 / (1 + np.exp(2.6 - 0.07 * x))),
    ("b1*x**b2", {"b1": 0.77, "b2": 3.86}, lambda x: 0.77 * x ** 3.86),
    ("a*sin(x)+b*cos(2*pi*x)-sqrt(x)/c+log(x)*arctan(x)", {"a": 1.5, "b": -0.5, "c": 4.0},
     lambda x: 1.5 * np.sin(x) - 0.5 * np.cos(2 * np.pi * x) - np.sqrt(x) / 4 + np.log(x) * np.arctan(x)),
    ("-c + +x", {"c": 3.0}, lambda x: -3.0 + x),
    ("c", {"c": 3.0}, lambda x: np.full_like(x, 3.0)),
])
def test_evaluates_like_numpy_in_both_backends(text, params, reference):
    x = np.linspace(0.5, 3.0, 11)
    expr = Expression(text, list(params))
    np.testing.assert_allclose(expr.evaluate(x, params, backend="numpy"), reference(x), rtol=1e-14)
    tf_params = {k: tf.constant(v, tf.float64) for k, v in params.items()}
    out = expr.evaluate(tf.constant(x), tf_params)
    assert out.shape == x.shape
    np.testing.assert_allclose(out.numpy(), reference(x), rtol=1e-13)


@pytest.mark.parametrize("text,match", [
    ("__import__('os').system('echo hi')", "call to .*__import__.* is not allowed"),
    ("__import__('os')", "call to '__import__'"),
    ("os.system('x')", "call to 'os.system'"),
    ("x.__class__", "Attribute"),
    ("(lambda: 1)()", "call to"),
    ("b1*x[0]", "Subscript"),
    ("b1 if x else b2", "IfExp"),
    ("b1 < x", "Compare"),
    ("b1 and x", "BoolOp"),
    ("'abc'", "constant 'abc'"),
    ("True*b1", "constant True"),
    ("1j*b1", "constant 1j"),
    ("b1 // x", "FloorDiv"),
    ("b1 % x", "Mod"),
    ("b1 ^ x", "BitXor"),
    ("~x*b1", "Invert"),
    ("exp(x, b1)", "exactly one positional argument"),
    ("exp(x=b1)", "exactly one positional argument"),
    ("exp*b1", "must be called"),
    ("b1*y", "unknown name 'y'"),
    ("b1*tanh(x)", "call to 'tanh'"),
    ("b1*x; import os", "not a valid formula"),
    ("[b1, x]", "List"),
    ("", "empty"),
])
def test_rejects_anything_outside_the_whitelist(text, match):
    with pytest.raises(ValueError, match=match):
        Expression(text, ["b1", "b2"] if "b2" in text else ["b1"])


def test_rejects_bad_parameter_lists_and_oversized_formulas():
    with pytest.raises(ValueError, match=r"\['b2'\] do not appear"):
        Expression("b1*x", ["b1", "b2"])
    with pytest.raises(ValueError, match="reserved"):
        Expression("x*exp(x)", ["exp"])
    with pytest.raises(ValueError, match="not a valid identifier"):
        Expression("x", ["b 1"])
    with pytest.raises(ValueError, match="repeat"):
        Expression("b*x", ["b", "b"])
    with pytest.raises(TypeError, match="must be a string"):
        Expression(42, ["b"])
    with pytest.raises(ValueError, match="characters"):
        Expression("b*x" + "+x" * 2000, ["b"])
    with pytest.raises(ValueError, match="nested"):
        Expression("(" * 300 + "b*x" + ")" * 300, ["b"])
    with pytest.raises(ValueError, match="more than 500 terms"):
        Expression("+".join(["b*x"] * 300), ["b"])


def test_parametric_model_reports_formula_errors_at_construction():
    with pytest.raises(ValueError, match="unknown name 'c'"):
        ParametricRegression("b*x + c", {"b": 1.0})
    with pytest.raises(ValueError, match="call to 'eval'"):
        ParametricRegression("eval('1')*b", {"b": 1.0})
    with pytest.raises(TypeError, match="params must be a dict"):
        ParametricRegression("b*x", "b")
    with pytest.raises(ValueError, match="finite number"):
        ParametricRegression("b*x", {"b": float("nan")})
    assert ParametricRegression("b*x", ["b"]).params.to_dict() == {"b": 1.0}
