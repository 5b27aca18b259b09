"""Every notebook executes top to bottom, and the repository stores them without outputs."""
import glob
import os
import sys
import time

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from launch import REPO  # noqa: E402

NOTEBOOKS_DIR = os.path.join(REPO, "notebooks")
NOTEBOOKS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(NOTEBOOKS_DIR, "*.ipynb")))
# These launch Horovod ranks from a cell, with the horovodrun installed next to Python.
LAUNCHING = {"05_distributed.ipynb"}
HOROVODRUN = os.path.join(os.path.dirname(sys.executable), "horovodrun")
CELL_TIMEOUT = 300   # seconds per cell: a hung cell fails the test instead of stalling it
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
              "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


REQUIRED = ["01_least_squares.ipynb", "02_gradient_descent.ipynb", "03_mlp_activations.ipynb",
            "04_time_series.ipynb", "05_distributed.ipynb"]


def test_the_notebooks_are_there():
    assert set(REQUIRED) <= set(NOTEBOOKS), sorted(set(REQUIRED) - set(NOTEBOOKS))
    for name in NOTEBOOKS:
        nb = nbformat.read(os.path.join(NOTEBOOKS_DIR, name), as_version=4)
        nbformat.validate(nb)
        assert nb.nbformat == 4
        assert any(c.cell_type == "markdown" for c in nb.cells), f"{name} explains nothing"
        sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "bwkeras" in sources, f"{name} does not use bwkeras"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_without_outputs(name):
    nb = nbformat.read(os.path.join(NOTEBOOKS_DIR, name), as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{name}: code cells {dirty} are stored with outputs or execution counts"


def execute(name, monkeypatch):
    """Run the notebook in a fresh "python3" kernel (this interpreter's ipykernel) from the
    repository root; fail with the failing cell's source and error."""
    for key, value in KERNEL_ENV.items():
        monkeypatch.setenv(key, value)   # the kernel inherits this process's environment
    nb = nbformat.read(os.path.join(NOTEBOOKS_DIR, name), as_version=4)
    # A first cell, run and removed again, proves the kernel is this interpreter's.
    nb.cells.insert(0, nbformat.v4.new_code_cell("import sys; print(sys.prefix, end='')"))
    client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": REPO}})
    started = time.monotonic()
    try:
        client.execute()
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name} failed:\n{exc}", pytrace=False)
    except nbclient.exceptions.CellTimeoutError as exc:
        pytest.fail(f"{name}: a cell ran past {CELL_TIMEOUT} s:\n{exc}", pytrace=False)
    print(f"{name}: {time.monotonic() - started:.1f} s")
    probe = nb.cells.pop(0)
    kernel_prefix = "".join(o.get("text", "") for o in probe.outputs)
    assert kernel_prefix == sys.prefix, (
        f"the python3 kernel ran in {kernel_prefix!r}, not in this environment {sys.prefix!r}")
    return nb


def _figures(nb):
    return sum(1 for c in nb.cells if c.cell_type == "code"
               for o in c.get("outputs", []) if "image/png" in o.get("data", {}))


@pytest.mark.parametrize("name", sorted(set(NOTEBOOKS) - LAUNCHING))
def test_notebook_runs(name, monkeypatch):
    nb = execute(name, monkeypatch)
    assert _figures(nb) >= 1, f"{name} showed no figure"


@pytest.mark.launcher
@pytest.mark.one_stack  # the launch path; the notebook's models run on both stacks above
@pytest.mark.parametrize("name", sorted(LAUNCHING & set(NOTEBOOKS)))
def test_notebook_launching_ranks_runs(name, monkeypatch):
    if not os.path.exists(HOROVODRUN):
        pytest.skip(f"horovodrun not installed next to {sys.executable}")
    nb = execute(name, monkeypatch)
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    # two ranks ended with the same weights, and the recipe's metrics came from two ranks
    assert "world size: [2, 2] | identical weights on both ranks: True" in text, text[-3000:]
    assert "ranks: 2 |" in text, text[-3000:]
    assert _figures(nb) >= 1
