"""The ``bwkeras`` command: list, inspect and run the recipes.

    bwkeras recipes                               one line per recipe
    bwkeras show-config sunspots [--set k=v]      the resolved config as YAML
    bwkeras run sunspots -np 2 [--config F] [--set k=v] [--resume DIR] [--runs-dir D]

``run`` with -np N > 1 starts the recipe under ``horovodrun -np N``; with N = 1 it runs in
this Python. The exit code is the recipe's (0 on success); errors print one message.
"""
import argparse
import ast
import os
import shutil
import subprocess
import sys

RECIPES_ENV = "BWKERAS_RECIPES"


class CLIError(Exception):
    pass


def recipes_dir():
    """The recipes folder: $BWKERAS_RECIPES, else recipes/ next to the bwkeras package
    (a source checkout or an editable install), else ./recipes."""
    candidates = []
    if os.environ.get(RECIPES_ENV):
        candidates.append(os.environ[RECIPES_ENV])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    candidates += [os.path.join(here, "recipes"), os.path.join(os.getcwd(), "recipes")]
    for path in candidates:
        if os.path.isdir(path):
            return path
    raise CLIError(
        "cannot find the recipes folder; set BWKERAS_RECIPES to the recipes/ folder of a "
        "bwkeras checkout (looked in: " + ", ".join(candidates) + ")"
    )


def available():
    """{name: first line of the recipe's docstring}, read without importing the recipe."""
    folder = recipes_dir()
    out = {}
    for fname in sorted(os.listdir(folder)):
        if not fname.endswith(".py") or fname.startswith("_"):
            continue
        with open(os.path.join(folder, fname), encoding="utf-8") as fh:
            doc = ast.get_docstring(ast.parse(fh.read())) or ""
        out[fname[:-3]] = doc.strip().splitlines()[0] if doc.strip() else ""
    return out


def recipe_path(name):
    names = available()
    if name not in names:
        raise CLIError(f"unknown recipe {name!r}; available recipes: {', '.join(names)}")
    return os.path.join(recipes_dir(), f"{name}.py")


def _horovodrun():
    local = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    found = local if os.path.exists(local) else shutil.which("horovodrun")
    if not found:
        raise CLIError("-np > 1 needs horovodrun on PATH (install bwkeras[horovod])")
    return found


def _recipe_args(args):
    out = []
    for path in args.config:
        out += ["--config", path]
    for item in args.sets:
        out += ["--set", item]
    if getattr(args, "resume", None):
        out += ["--resume", args.resume]
    if getattr(args, "runs_dir", None):
        out += ["--runs-dir", args.runs_dir]
    return out


def _add_config_args(p):
    p.add_argument("--config", metavar="FILE", action="append", default=[],
                   help="YAML file with changes to the defaults (repeatable)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                   help="override one key, e.g. train.epochs=3 (repeatable)")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="bwkeras", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `bwkeras COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("recipes", help="list the recipes, one line each")
    show = sub.add_parser("show-config", help="print a recipe's resolved config as YAML")
    show.add_argument("recipe")
    _add_config_args(show)
    run = sub.add_parser("run", help="run a recipe (under horovodrun when -np > 1)")
    run.add_argument("recipe")
    run.add_argument("-np", "--np", dest="np", type=int, default=1, metavar="N",
                     help="number of Horovod ranks (default: 1, no launcher)")
    _add_config_args(run)
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    run.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default: runs)")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "recipes":
            names = available()
            width = max(map(len, names), default=0)
            for name, line in names.items():
                print(f"{name:<{width}}  {line}")
            return 0
        path = recipe_path(args.recipe)
        if args.command == "show-config":
            cmd = [sys.executable, path, *_recipe_args(args), "--print-config"]
        else:
            if args.np < 1:
                raise CLIError(f"-np must be >= 1, got {args.np}")
            cmd = [sys.executable, path, *_recipe_args(args)]
            if args.np > 1:
                cmd = [_horovodrun(), "-np", str(args.np), "-H", f"localhost:{args.np}"] + cmd
        return subprocess.call(cmd)
    except CLIError as exc:
        print(f"bwkeras: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
