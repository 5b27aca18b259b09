"""The structure the package promises: no import cycle, Keras-free modules that stay free
of TensorFlow, and the CLI's config work done without starting it."""
import ast
import os
import subprocess
import sys

import pytest

from launch import BASE_ENV, REPO

PACKAGE = os.path.join(REPO, "bwkeras")
HEAVY = ("tensorflow", "keras", "horovod")


def _module_name(path):
    rel = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
    return rel[: -len(".__init__")] if rel.endswith(".__init__") else rel


def _imports(path, name):
    """Every bwkeras module `name` imports, at the top or inside a function."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bwkeras")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if not base.startswith("bwkeras"):
                continue
            for alias in node.names:  # `from . import x` imports the module x when it is one
                sub = f"{base}.{alias.name}"
                found.add(sub if _exists(sub) else base)
    return found - {name}


def _exists(module):
    path = os.path.join(REPO, *module.split("."))
    return os.path.isdir(path) or os.path.exists(path + ".py")


def _graph():
    graph = {}
    for root, _dirs, files in os.walk(PACKAGE):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(root, f)
                name = _module_name(path)
                graph[name] = _imports(path, name)
    return graph


def test_the_graph_reader_sees_imports():
    graph = _graph()
    # a top-level import, a function-level one, and `from . import module`
    assert "bwkeras.atomic" in graph["bwkeras.runs"]
    assert "bwkeras.distributed" in graph["bwkeras.runs"]
    assert "bwkeras.distributed.runtime" in graph["bwkeras.distributed.keras_callbacks"]


def test_no_import_cycle_in_bwkeras():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def _loaded(code, *args, env=None):
    """The heavy modules (TensorFlow, Keras, Horovod) that running `code` imported."""
    full_env = dict(os.environ, **BASE_ENV, **(env or {}))
    proc = subprocess.run([sys.executable, "-X", "importtime", *code, *args], capture_output=True,
                          text=True, timeout=120, env=full_env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    names = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
             if line.startswith("import time:")}
    assert "bwkeras" in names, "importtime saw no bwkeras: the check would prove nothing"
    return sorted(n for n in names if n.split(".")[0] in HEAVY), proc


def test_config_batch_and_run_folders_load_no_tensorflow():
    heavy, _ = _loaded(["-c", "import bwkeras.config, bwkeras.batch, bwkeras.runs, "
                        "bwkeras.atomic, bwkeras.report, bwkeras.checkpoints, bwkeras.training, "
                        "bwkeras.plots, recipes; from bwkeras import distributed"])
    assert heavy == []


@pytest.mark.parametrize("name", __import__("recipes").NAMES)
def test_importing_a_recipe_loads_no_tensorflow(name):
    heavy, _ = _loaded(["-c", f"import recipes.{name} as r; r.CONFIG()"])
    assert heavy == []


def test_cli_config_work_loads_no_tensorflow(tmp_path):
    heavy, proc = _loaded(["-m", "bwkeras.cli", "show-config", "sunspots", "--set",
                           "train.epochs=3"])
    assert heavy == [] and "epochs: 3" in proc.stdout
    heavy, proc = _loaded(["-m", "bwkeras.cli", "submit", "mlp", "--nodes", "1", "--time",
                           "00:05:00", "--runs-dir", str(tmp_path), "--dry-run"])
    assert heavy == [] and "script:" in proc.stdout
    assert len(os.listdir(tmp_path)) == 1


def test_a_heavy_import_is_seen():
    """The check above can fail: a module that imports Keras is reported."""
    heavy, _ = _loaded(["-c", "import bwkeras.callbacks"])
    assert "keras" in heavy


def test_lazy_names_never_share_a_submodule_name():
    """Importing submodule P.x binds the module as P.x: a lazy name x would be hidden."""
    import importlib

    from bwkeras import distributed

    for name in distributed.__all__:
        assert not _exists(f"bwkeras.distributed.{name}"), name
        getattr(distributed, name)  # and every name resolves
    assert importlib.import_module("bwkeras.distributed.sharding").shard is distributed.shard


SAVE = """
import sys, numpy as np, keras
from bwkeras import models, regression
m = models.MLP(hidden_units=[3], n_outputs=2)
m(np.zeros((1, 4), "float32"))
m.save(sys.argv[1] + "/mlp.keras")
r = regression.PolynomialRegression(degree=2)
r.save(sys.argv[1] + "/poly.keras")
"""


def test_importing_a_model_package_registers_its_classes(tmp_path):
    """A fresh process that imports the package loads saved models with plain Keras."""
    env = dict(os.environ, **BASE_ENV)
    run = lambda code: subprocess.run([sys.executable, "-c", code, str(tmp_path)],  # noqa: E731
                                      capture_output=True, text=True, timeout=180, env=env)
    proc = run(SAVE)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run("import sys, keras, bwkeras.models, bwkeras.regression\n"
               "for f in ('mlp', 'poly'):\n"
               "    print(type(keras.models.load_model(f'{sys.argv[1]}/{f}.keras')).__name__)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["MLP", "PolynomialRegression"]
