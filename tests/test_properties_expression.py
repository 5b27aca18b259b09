"""Property-based tests of the formula parser (Hypothesis): a generated formula is either
accepted and evaluates exactly like an independent NumPy evaluator of the same tree, or
refused with ValueError / TypeError; no text at all makes it raise anything else."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bwkeras.regression.expression import FUNCTIONS, Expression

pytestmark = pytest.mark.one_stack

PARAMS = ("a", "b", "c")
X = np.array([-1.5, -0.25, 0.0, 0.5, 2.0])
VALUES = {"a": 1.25, "b": -0.5, "c": 3.0}
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- a grammar of formulas, kept as trees so the reference never parses text ------------

numbers = st.one_of(
    st.integers(min_value=0, max_value=10 ** 6),
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 1, 2, 0.5, 1e-300, 1e300, 10 ** 400]),
).map(lambda v: ("num", v))
leaves = st.one_of(numbers, st.just(("x",)), st.sampled_from(PARAMS).map(lambda p: ("param", p)))


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*", "/", "**"]), children, children)
        .map(lambda t: ("bin",) + t),
        st.tuples(st.sampled_from(["-", "+"]), children).map(lambda t: ("unary",) + t),
        st.tuples(st.sampled_from(FUNCTIONS), children).map(lambda t: ("call",) + t),
    )


trees = st.recursive(leaves, _extend, max_leaves=12)


def render(tree):
    kind = tree[0]
    if kind == "num":
        return repr(tree[1])
    if kind == "x":
        return "x"
    if kind == "param":
        return tree[1]
    if kind == "bin":
        return f"({render(tree[2])}){tree[1]}({render(tree[3])})"
    if kind == "unary":
        return f"{tree[1]}({render(tree[2])})"
    return f"{tree[1]}({render(tree[2])})"


_NP = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "**": np.power,
       "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
       "arctan": np.arctan}


def reference(tree):
    """NumPy on the tree, float64 throughout: the evaluator the parser must agree with."""
    kind = tree[0]
    if kind == "num":
        return np.float64(float(tree[1]))
    if kind == "x":
        return X
    if kind == "param":
        return np.float64(VALUES[tree[1]])
    if kind == "bin":
        return _NP[tree[1]](reference(tree[2]), reference(tree[3]))
    if kind == "unary":
        value = reference(tree[2])
        return -value if tree[1] == "-" else value
    return _NP[tree[1]](reference(tree[2]))


def names_in(tree):
    if tree[0] == "param":
        return {tree[1]}
    return set().union(*(names_in(t) for t in tree[1:] if isinstance(t, tuple)))


@FAST
@given(trees)
def test_an_accepted_formula_evaluates_like_the_reference(tree):
    text = render(tree)
    names = sorted(names_in(tree))
    try:
        expr = Expression(text, names)
    except (ValueError, TypeError):
        return  # refused: the only two ways allowed (the next test shows refusals happen)
    with np.errstate(all="ignore"):
        got = np.asarray(expr.evaluate(X, {n: VALUES[n] for n in names}, backend="numpy"))
        want = np.broadcast_to(np.asarray(reference(tree), dtype=np.float64), X.shape)
    np.testing.assert_array_equal(got, want)  # same float64 operations in the same order


@FAST
@given(trees)
def test_a_refused_formula_holds_a_constant_term_without_a_finite_value(tree):
    """Refusals of grammatical formulas come only from constant terms (a literal past
    float64, 9**9**9, log(0), a division by a constant zero) or a formula too long."""
    text = render(tree)
    names = sorted(names_in(tree))
    try:
        Expression(text, names)
    except ValueError as exc:
        message = str(exc)
        assert ("finite float64" in message or "divides by zero" in message
                or "characters; at most" in message or "more than" in message), message


def test_the_refusal_branch_is_reached():
    """The two properties above can fail: both outcomes occur in the grammar."""
    assert Expression(render(("bin", "*", ("param", "a"), ("x",))), ["a"]).text == "(a)*(x)"
    with pytest.raises(ValueError, match="finite float64"):
        Expression(render(("bin", "*", ("param", "a"), ("num", 10 ** 400))), ["a"])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60), st.lists(st.text(max_size=6), max_size=3))
def test_any_text_is_accepted_or_refused_with_value_or_type_error(text, names):
    try:
        expr = Expression(text, names)
    except (ValueError, TypeError):
        return
    assert text.isascii() and "#" not in text
    with np.errstate(all="ignore"):
        expr.evaluate(X, {n: 1.0 for n in expr.param_names}, backend="numpy")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("abcx0123456789.+-*/()e ") + ["**"] + list(FUNCTIONS)),
                max_size=25).map("".join))
def test_near_grammatical_text_is_accepted_or_refused_with_value_error(text):
    names = [p for p in ("a", "b", "c") if p in text]
    try:
        expr = Expression(text, names)
    except (ValueError, TypeError):
        return
    with np.errstate(all="ignore"):
        out = expr.evaluate(X, {n: 1.0 for n in names}, backend="numpy")
    assert np.shape(out) == X.shape


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False))
def test_every_finite_literal_is_kept_exactly_and_infinite_ones_refused(value):
    if math.isinf(value):
        with pytest.raises(ValueError, match="not a finite float64"):
            Expression("a*x + 1e999", ["a"])  # how an infinite literal is written
        return
    text = f"a*x + {abs(value)!r}"
    out = Expression(text, ["a"]).evaluate(X, {"a": 0.0}, backend="numpy")
    assert np.all(out == abs(value))
