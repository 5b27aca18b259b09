"""A safe parser for model formulas y = f(x; theta), built on Python's ``ast`` module.

A formula such as ``"b1*(1-exp(-b2*x))"`` is parsed once into a small tree whose nodes are
taken from a whitelist: numbers, the variable ``x`` (or the named inputs), the named parameters, the constant
``pi``, the operators ``+ - * / **`` (and unary ``+ -``), and the one-argument functions
``exp log sqrt sin cos arctan``. Anything else (attribute access, subscripts, other names,
calls with keywords, lambdas, comparisons, strings...) is rejected with a ValueError that
names the construct. The text is never passed to ``eval``, so a formula stored in a saved
model is safe to load.

The text must be ASCII (Python would fold ``𝐱`` into ``x``: one name, two spellings) and
may not hold a comment (``#``: the rest of the line would silently vanish). A constant
sub-term (``9**9**9**9``, ``1e999``, a 400-digit literal, ``log(0)``) is evaluated once at
parse time and must give a finite real number, so every later evaluation can only
overflow through the data or the parameters, never through the formula itself.

The tree is evaluated against an operator table: TensorFlow for the Keras layer (and its
autodiff Jacobian), NumPy for synthetic data and reference values.
"""
import ast
import keyword
import math

import numpy as np

from .._checks import is_real

FUNCTIONS = ("exp", "log", "sqrt", "sin", "cos", "arctan")
CONSTANTS = {"pi": math.pi}
VARIABLE = "x"
MAX_LENGTH = 2000      # characters: a formula is a line, not a program
MAX_NODES = 500        # parsed nodes, a bound on evaluation cost

_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_UNARY = {ast.USub: "neg", ast.UAdd: "pos"}
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}
RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS) | {VARIABLE}


def _numpy_ops():
    return {
        "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
        "pow": np.power, "neg": np.negative, "pos": lambda a: a,
        "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "sin": np.sin, "cos": np.cos,
        "arctan": np.arctan,
    }


def _tensorflow_ops():
    import tensorflow as tf

    return {
        "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a: -a,
        "pos": lambda a: a, "exp": tf.exp, "log": tf.math.log, "sqrt": tf.sqrt,
        "sin": tf.sin, "cos": tf.cos, "arctan": tf.atan,
    }


def _ascii_only(what, text):
    """ValueError naming the first character of `text` that is not ASCII (a lone
    surrogate included)."""
    for i, ch in enumerate(text):
        if ord(ch) > 127:
            kind = "a lone surrogate" if 0xD800 <= ord(ch) <= 0xDFFF else "the character"
            raise ValueError(
                f"{what} holds {kind} {ascii(ch)} (U+{ord(ch):04X}) at position {i}: formulas "
                f"and parameter names are ASCII (letters a-z, A-Z, digits, _)")


def check_parameter_name(name):
    """A parameter name must be a plain ASCII identifier that is not reserved by the grammar."""
    if isinstance(name, str):
        _ascii_only(f"parameter name {ascii(name)[:80]}", name)
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"parameter name {name!r} is not a valid identifier (letters, digits, _)")
    if name in RESERVED:
        raise ValueError(
            f"parameter name {name!r} is reserved: the variable is {VARIABLE!r}, the functions "
            f"are {FUNCTIONS} and the constants are {tuple(CONSTANTS)}"
        )
    return name


def check_variables(variables, param_names=()):
    """Input names: a non-empty sequence of distinct identifiers, none of them a function,
    a constant or a parameter name."""
    if isinstance(variables, str) or not isinstance(variables, (list, tuple)):
        raise TypeError(f"inputs must be a list or tuple of names such as ('x1', 'x2'), got {variables!r}")
    names = tuple(variables)
    if not names:
        raise ValueError("inputs is empty: a formula needs at least one input variable such as 'x'")
    for v in names:
        if not isinstance(v, str) or not v.isascii() or not v.isidentifier() or keyword.iskeyword(v):
            raise ValueError(f"input name {v!r} is not a valid ASCII identifier (letters, digits, _)")
        if v in FUNCTIONS or v in CONSTANTS:
            raise ValueError(f"input name {v!r} is reserved: the functions are {FUNCTIONS} and "
                             f"the constants are {tuple(CONSTANTS)}")
        if v in param_names:
            raise ValueError(f"input name {v!r} is also a parameter name: rename one of them")
    if len(set(names)) != len(names):
        raise ValueError(f"input names repeat: {list(names)}")
    return names


_MATH = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": math.pow, "neg": lambda a: -a, "pos": lambda a: a,
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "sin": math.sin, "cos": math.cos,
    "arctan": math.atan,
}


def _is_constant(tree):
    if tree[0] == "const":
        return True
    if tree[0] == "op":
        return all(_is_constant(child) for child in tree[2:])
    return False


def _constant_value(tree):
    """The float value of a tree without x or parameters, by Python's math (which raises
    on overflow and outside a function's domain, where NumPy would return inf or nan)."""
    if tree[0] == "const":
        return tree[1]
    value = _MATH[tree[1]](*(_constant_value(child) for child in tree[2:]))
    if isinstance(value, complex):
        raise ValueError("a complex number")
    return float(value)


class Expression:
    """A parsed formula in the variable ``x`` (or the input names ``variables``, e.g.
    ``("x1", "x2")``) and the parameters ``param_names``.

    >>> e = Expression("b1*(1-exp(-b2*x))", ["b1", "b2"])
    >>> float(e.evaluate(np.array([2.0]), {"b1": 1.0, "b2": 0.5}, backend="numpy")[0])
    0.6321205588285577
    """

    def __init__(self, text, param_names, variables=(VARIABLE,)):
        if not isinstance(text, str):
            raise TypeError(f"expression must be a string, got {type(text).__name__}: {text!r}")
        if not text.strip():
            raise ValueError("expression is empty; expected a formula in x such as 'a*exp(b*x)'")
        if len(text) > MAX_LENGTH:
            raise ValueError(f"expression has {len(text)} characters; at most {MAX_LENGTH} are allowed")
        self.param_names = tuple(check_parameter_name(p) for p in param_names)
        if len(set(self.param_names)) != len(self.param_names):
            raise ValueError(f"parameter names repeat: {list(self.param_names)}")
        _ascii_only(f"expression {ascii(text[:77])}", text)
        self.variables = check_variables(variables, self.param_names)
        self.text = text
        self._shown = text if len(text) <= 80 else text[:77] + "..."
        if "#" in text:
            raise ValueError(f"expression {self._shown!r} holds a comment ('#' at position "
                             f"{text.index('#')}); a formula is one expression, with nothing "
                             "after it")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"expression {self._shown!r} is not a valid formula: {exc.msg}") from None
        except (RecursionError, MemoryError):
            raise ValueError(f"expression {self._shown!r} is nested too deeply") from None
        self._count = 0
        self._source = text.strip()
        try:
            self._tree = self._compile(tree.body)
        except RecursionError:
            raise ValueError(f"expression {self._shown!r} is nested too deeply") from None
        unused = [p for p in self.param_names if p not in self.used_names]
        if unused:
            raise ValueError(
                f"parameter(s) {unused} do not appear in expression {self._shown!r}: a parameter the "
                f"model does not use cannot be estimated"
            )

    # -- parsing -------------------------------------------------------------------------
    def _compile(self, node):
        self._count += 1
        if self._count > MAX_NODES:
            raise ValueError(f"expression has more than {MAX_NODES} terms")
        if isinstance(node, ast.Constant):
            value = node.value
            if not is_real(value):
                raise ValueError(
                    f"constant {value!r:.40} in expression {self._shown!r} is not allowed; "
                    "only real numbers"
                )
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise ValueError(
                    f"constant {self._term(node)} in expression {self._shown!r} is not a finite "
                    f"float64 number (the largest is about 1.8e308)")
            return ("const", number)
        if isinstance(node, ast.Name):
            name = node.id
            if name in self.variables:
                return ("x", self.variables.index(name))
            if name in CONSTANTS:
                return ("const", CONSTANTS[name])
            if name in self.param_names:
                return ("param", name)
            if name in FUNCTIONS:
                raise ValueError(f"function {name!r} must be called, e.g. {name}(x), in {self._shown!r}")
            raise ValueError(
                f"unknown name {name!r} in expression {self._shown!r}; allowed are the "
                f"variable(s) {list(self.variables)}, the parameters {list(self.param_names)}, the constants "
                f"{list(CONSTANTS)} and the functions {list(FUNCTIONS)}"
            )
        if isinstance(node, ast.BinOp):
            op = _BINARY.get(type(node.op))
            if op is None:
                raise ValueError(
                    f"operator {type(node.op).__name__} in expression {self._shown!r} is not allowed; "
                    f"allowed are + - * / **"
                )
            left, right = self._compile(node.left), self._compile(node.right)
            if op == "div" and _is_constant(right) and _constant_value(right) == 0.0:
                raise ValueError(f"term {self._term(node)} of expression {self._shown!r} "
                                 "divides by zero")
            return self._constant_checked(node, ("op", op, left, right))
        if isinstance(node, ast.UnaryOp):
            op = _UNARY.get(type(node.op))
            if op is None:
                raise ValueError(
                    f"unary operator {type(node.op).__name__} in expression {self._shown!r} is not "
                    f"allowed; allowed are unary + and -"
                )
            return self._constant_checked(node, ("op", op, self._compile(node.operand)))
        if isinstance(node, ast.Call):
            func = node.func
            if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
                shown = func.id if isinstance(func, ast.Name) else ast.unparse(func)
                raise ValueError(
                    f"call to {shown!r} in expression {self._shown!r} is not allowed; the functions "
                    f"are {list(FUNCTIONS)}"
                )
            if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
                raise ValueError(
                    f"{func.id}() takes exactly one positional argument, in expression {self._shown!r}"
                )
            return self._constant_checked(node, ("op", func.id, self._compile(node.args[0])))
        raise ValueError(
            f"construct {type(node).__name__} ({ast.unparse(node)!r}) in expression {self._shown!r} "
            f"is not allowed; a formula may use numbers, x, the parameters, pi, + - * / ** and "
            f"{', '.join(FUNCTIONS)}"
        )

    def _term(self, node):
        """The source text of `node`, cut to a readable length."""
        text = ast.get_source_segment(self._source, node) or ast.unparse(node)
        return repr(text if len(text) <= 40 else text[:37] + "...")

    def _constant_checked(self, node, tree):
        """`tree`; when it holds neither x nor a parameter, its value must be a finite real
        number (ValueError naming the term): 9**9**9**9 or log(0) fail here, once, rather
        than in every evaluation."""
        if not _is_constant(tree):
            return tree
        try:
            value = _constant_value(tree)
        except (OverflowError, ZeroDivisionError, ValueError) as exc:
            value, why = None, str(exc) or type(exc).__name__
        else:
            why = None if math.isfinite(value) else "not finite"
        if why is not None:
            raise ValueError(
                f"term {self._term(node)} of expression {self._shown!r} has no finite float64 "
                f"value ({why}); write the constant it stands for, within about 1.8e308")
        return tree

    @property
    def used_names(self):
        names = set()

        def walk(node):
            if node[0] == "param":
                names.add(node[1])
            elif node[0] == "op":
                for child in node[2:]:
                    walk(child)

        walk(self._tree)
        return names

    # -- evaluation ----------------------------------------------------------------------
    def evaluate(self, x, params, backend="tensorflow"):
        """f(x; params). `params` maps each parameter name to a value (a scalar, or an array
        that broadcasts against one column of x). x: shape (n,) for one variable, (n, k)
        with one column per variable (in `variables` order) for several. backend:
        "tensorflow" (ops on tensors, differentiable) or "numpy"."""
        if backend == "tensorflow":
            ops = _tensorflow_ops()
        elif backend == "numpy":
            ops = _numpy_ops()
        else:
            raise ValueError(f"backend must be 'tensorflow' or 'numpy', got {backend!r}")
        missing = [p for p in self.param_names if p not in params]
        if missing:
            raise ValueError(f"no value for parameter(s) {missing} of expression {self._shown!r}")

        def run(node):
            kind = node[0]
            if kind == "const":
                return node[1]
            if kind == "x":
                return x if len(self.variables) == 1 else x[:, node[1]]
            if kind == "param":
                return params[node[1]]
            return ops[node[1]](*(run(child) for child in node[2:]))

        out = run(self._tree)
        column = x if len(self.variables) == 1 else x[:, 0]
        if not hasattr(out, "shape") or getattr(out, "shape", ()) != getattr(column, "shape", None):
            # A formula without x (e.g. "c") still yields one value per sample.
            out = out + 0.0 * column
        return out

    def __repr__(self):
        return f"Expression({self._shown!r}, params={list(self.param_names)})"

    def __str__(self):
        return self.text
