"""``make demo``: the sunspots recipe on the packaged data, e.g. under ``horovodrun -np 2``.

    horovodrun -np 2 python -m bwkeras.demo [--set train.epochs=100 ...]

Runs recipes/sunspots.py with its defaults (plus any recipe options given) and prints its
results table on rank 0.
"""
import importlib.util
import sys

from bwkeras.cli import CLIError, recipe_path


def main(argv=None):
    try:
        path = recipe_path("sunspots")
    except CLIError as exc:
        print(f"bwkeras.demo: error: {exc}", file=sys.stderr)
        return 2
    spec = importlib.util.spec_from_file_location("bwkeras_recipe_sunspots", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    recipe.main(sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
