"""The command line every recipe shares: files, overrides, resume, output folder.

    cfg, args = args.parse(CONFIG(), argv, description=__doc__)

``--config FILE`` (repeatable, only the changes), ``--set KEY=VALUE`` (repeatable, applied
last), ``--resume RUN_DIR``, ``--run-dir DIR``, ``--runs-dir DIR`` and ``--print-config``:
no recipe declares a flag per key. Bad input exits 2 with one message.
"""
import argparse
import os
import sys

from bwkeras import config, runs

# Keys that moved between sections: a run folder written before the move still resumes.
MOVED = {("train", "checkpoint_keep"): ("run", "checkpoint_keep"),
         ("train", "tensorboard"): ("run", "tensorboard")}


def parser(description=None, prog=None):
    out = argparse.ArgumentParser(
        prog=prog, description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Keys and defaults: run with --print-config. Example: "
               "--set train.epochs=3 --set train.learning_rate=0.05",
    )
    out.add_argument("--config", metavar="FILE", action="append", default=[],
                     help="YAML file holding only the changes to the defaults (repeatable)")
    out.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="sets",
                     help="override one key, e.g. train.epochs=3 (repeatable; applied last)")
    out.add_argument("--resume", metavar="RUN_DIR", default=None,
                     help="continue the run in RUN_DIR from its last checkpoint")
    out.add_argument("--run-dir", metavar="DIR", default=None,
                     help="run in exactly DIR: start there, or continue from its last "
                          "checkpoint when it holds one (for batch jobs that get requeued)")
    out.add_argument("--runs-dir", metavar="DIR", default="runs",
                     help="where new run folders are created (default: %(default)s)")
    out.add_argument("--print-config", action="store_true",
                     help="print the resolved config as YAML and exit")
    return out


def saved_config(default, path):
    """`default` with a run folder's saved config.yaml applied, keys of older versions
    moved to where they live now."""
    data = config.read_yaml(path)
    if isinstance(data, dict):
        for (old_section, old_key), (section, key) in MOVED.items():
            old = data.get(old_section)
            if isinstance(old, dict) and old_key in old and hasattr(default, section):
                data.setdefault(section, {}).setdefault(key, old.pop(old_key))
    return config.apply_mapping(default, data, f"config file {path}")


def resolve(default, files=(), sets=(), resume=None, run_dir=None, runs_dir=None):
    """The resolved config (ConfigError on bad input). With `resume` / `run_dir` the run's
    saved config.yaml is the starting point, so only the changes need repeating.

    The folders are checked first (`bwkeras.runs.check_target`: a --resume folder that is
    not a run or holds no intact checkpoint, a --runs-dir that is a file or read-only),
    so bad input stops here, before any folder is created or changed."""
    if resume and run_dir:
        raise config.ConfigError("give --resume or --run-dir, not both")
    try:
        runs.check_target(runs_dir=runs_dir, resume=resume or None, run_dir=run_dir or None)
    except (OSError, ValueError) as exc:
        raise config.ConfigError(str(exc)) from None
    existing = resume or run_dir
    base = default
    if existing and os.path.exists(os.path.join(existing, "config.yaml")):
        base = saved_config(default, os.path.join(existing, "config.yaml"))
    return config.load(base, files, sets)


def parse(default, argv=None, description=None, prog=None):
    """(resolved config, parsed arguments) for a recipe; exits 2 with a message on bad
    input, and 0 after printing the config for --print-config."""
    p = parser(description, prog)
    args = p.parse_args(argv)
    try:
        cfg = resolve(default, args.config, args.sets, args.resume, args.run_dir,
                      None if args.print_config else args.runs_dir)
    except config.ConfigError as exc:
        p.error(str(exc))
    if args.print_config:
        sys.stdout.write(config.to_yaml(cfg))
        p.exit(0)
    try:
        check_launch(cfg)
    except ValueError as exc:
        p.error(str(exc))
    return cfg, args


def check_launch(cfg):
    """ValueError unless the config fits the job it runs in: model.model_parallel (where
    the recipe has it) must divide the number of ranks the launcher started."""
    from bwkeras import distributed as dist
    from bwkeras.distributed import model_parallel

    k = getattr(getattr(cfg, "model", None), "model_parallel", 1)
    if k > 1:
        try:
            model_parallel.check_model_parallel(k, dist.world_size_from_env() or 1)
        except ValueError as exc:
            raise ValueError(f"model.model_parallel: {exc}") from None
