"""The documentation site: it builds with ``mkdocs build --strict`` (a broken link, a page
left out of the nav or a docstring mkdocstrings cannot render fails), without importing
TensorFlow; every public name of every API module has its entry on its page; and every
relative link in README.md points to a file that exists."""
import ast
import importlib
import importlib.util
import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.one_stack

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("tensorflow", "keras", "horovod")

# module -> its page under docs/api/, and how its public names are listed
LAZY_PACKAGES = {  # __all__ built by bwkeras._lazy.lazy_attributes: read at import (cheap)
    "bwkeras.regression": "regression",
    "bwkeras.models": "models",
    "bwkeras.timeseries": "timeseries",
    "bwkeras.distributed": "distributed",
}
MODULES = {  # __all__ a literal list (or, without one, the top-level defs): read from source
    "bwkeras.batch": "batch",
    "bwkeras.activations": "activations",
    "bwkeras.training": "training",
    "bwkeras.runs": "runs",
    "bwkeras.config": "config",
    "bwkeras.callbacks": "callbacks",
    "bwkeras.checkpoints": "checkpoints",
    "bwkeras.atomic": "atomic",
    "bwkeras.report": "report",
    "bwkeras.plots": "plots",
    "bwkeras.datasets": "datasets",
    "bwkeras.data.synthetic": "synthetic",
    "bwkeras.parallel": "parallel",
}


def _mkdocs_command():
    script = os.path.join(os.path.dirname(sys.executable), "mkdocs")
    if os.path.exists(script):
        return [script]
    if importlib.util.find_spec("mkdocs") is not None:
        return [sys.executable, "-m", "mkdocs"]
    pytest.skip("mkdocs is not installed (the test extra installs it: pip install -e .[test])")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(site directory, completed build process), built once for this module."""
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, PYTHONPROFILEIMPORTTIME="1")  # every import on stderr
    proc = subprocess.run(
        [*_mkdocs_command(), "build", "--strict", "--config-file",
         os.path.join(REPO, "mkdocs.yml"), "--site-dir", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return out, proc


def _log(proc):
    return "\n".join(line for line in proc.stderr.splitlines()
                     if not line.startswith("import time:"))


def _page(site_dir, page):
    path = os.path.join(site_dir, "api", page, "index.html")
    assert os.path.exists(path), f"docs/api/{page}.md was not built"
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _documented(html):
    """The last part of every object id mkdocstrings gave a heading on the page."""
    return {anchor.rsplit(".", 1)[-1]
            for anchor in re.findall(r'<h[1-6] id="(bwkeras\.[\w.]+)"', html)}


def _source_names(module):
    path = os.path.join(REPO, *module.split("."))
    path = os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read())
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and getattr(node.targets[0], "id", None) == "__all__"):
            return list(ast.literal_eval(node.value))
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


def test_the_site_builds_with_warnings_as_errors(site):
    _site_dir, proc = site
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{_log(proc)[-5000:]}"
    assert "WARNING" not in _log(proc), _log(proc)


def test_building_the_site_imports_neither_tensorflow_nor_bwkeras(site):
    _site_dir, proc = site
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "griffe" in imported, "no import profile: the check would prove nothing"
    loaded = sorted(n for n in imported if n.split(".")[0] in HEAVY + ("bwkeras",))
    # griffe reads the source; importing it would start TensorFlow for every build
    assert loaded == []


@pytest.mark.parametrize("package", sorted(LAZY_PACKAGES))
def test_every_name_of_a_lazy_package_is_on_its_page(site, package):
    names = importlib.import_module(package).__all__
    assert names, f"{package}.__all__ is empty"
    missing = sorted(set(names) - _documented(_page(site[0], LAZY_PACKAGES[package])))
    assert not missing, (f"docs/api/{LAZY_PACKAGES[package]}.md documents no "
                         f"{', '.join(missing)}: add a '::: {package}.SUBMODULE.NAME' line")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_public_name_of_a_module_is_on_its_page(site, module):
    names = _source_names(module)
    assert names, f"found no public names in {module}"
    missing = sorted(set(names) - _documented(_page(site[0], MODULES[module])))
    assert not missing, f"docs/api/{MODULES[module]}.md documents no {', '.join(missing)}"


def test_the_api_pages_hold_the_main_classes_with_their_docstrings(site):
    site_dir = site[0]
    for page, anchor in [("regression", "bwkeras.regression.polynomial.PolynomialRegression"),
                         ("distributed", "bwkeras.distributed.optimizer.DistributedOptimizer"),
                         ("models", "bwkeras.models.recurrent.RecurrentForecaster"),
                         ("training", "bwkeras.training.fit")]:
        assert f'id="{anchor}"' in _page(site_dir, page), f"{anchor} is not on api/{page}"
    # the docstrings themselves are rendered, not only the headings
    assert "The training sequence every recipe shares" in _page(site_dir, "training")
    assert "Horner" in _page(site_dir, "regression")


def test_the_architecture_page_and_the_benchmark_figures_are_built(site):
    site_dir = site[0]
    with open(os.path.join(site_dir, "architecture", "index.html"), encoding="utf-8") as fh:
        assert "Where a change goes" in fh.read()
    # docs/performance.md shows benchmarks/results/*.png (tools/mkdocs_hooks.py)
    assert os.path.exists(os.path.join(site_dir, "benchmarks", "results", "scaling.png"))


def test_every_relative_link_in_the_readme_exists():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as fh:
        text = fh.read()
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    relative = [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)
                and not t.startswith("#")]
    assert len(relative) >= 5, f"found only {relative}: the link pattern is broken"
    broken = [t for t in relative
              if not os.path.exists(os.path.join(REPO, t.split("#", 1)[0]))]
    assert not broken, f"README.md links to missing files: {broken}"
