"""The recipes: short runnable scripts, one per workflow of the tutorial.

Each is a module with its config class `CONFIG` and `main(argv)`, and runs as
``python recipes/NAME.py`` or under ``horovodrun``. Importing one is cheap (TensorFlow
starts inside `main`), so the ``bwkeras`` command lists them, resolves their configs and
checks a batch job's settings in its own process.
"""
import importlib

# In the order `bwkeras recipes` lists them: from least squares to the scaling studies.
NAMES = ("least_squares", "gradient_descent", "capacity", "mlp", "sunspots",
         "sequence_labeling", "large_batch")


def load(name):
    """The recipe module called `name`; ValueError naming the recipes for another name."""
    if name not in NAMES:
        raise ValueError(f"unknown recipe {name!r}; available recipes: {', '.join(NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def summary(name):
    """The first line of recipe `name`'s docstring."""
    doc = (load(name).__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
