"""The ``bwkeras`` command: list, inspect and run the recipes.

    bwkeras recipes                               one line per recipe
    bwkeras show-config sunspots [--set k=v]      the resolved config as YAML
    bwkeras run sunspots -np 2 [--config F] [--set k=v] [--resume DIR] [--runs-dir D]
    bwkeras submit sunspots --scheduler slurm --nodes 2 --tasks-per-node 4 --time 01:00:00
    bwkeras submit mlp --nodes 2 --tasks-per-node 2 --model-parallel 2 --dry-run

``run`` with -np N > 1 starts the recipe under ``horovodrun -np N``; with N = 1 it runs in
this Python. The exit code is the recipe's (0 on success); errors print one message.
"""
import argparse
import os
import shutil
import subprocess
import sys


class CLIError(Exception):
    pass


def _registry():
    """The recipes package (``recipes/`` of the checkout, installed beside bwkeras)."""
    try:
        import recipes
    except ImportError as exc:
        raise CLIError(f"cannot import the recipes ({exc}); install bwkeras from its "
                       "checkout (`make setup`, or pip install -e .)") from None
    return recipes


def available():
    """{name: first line of the recipe's docstring}, in the registry's order."""
    registry = _registry()
    return {name: registry.summary(name) for name in registry.NAMES}


def recipe(name):
    """The recipe module `name` (its CONFIG class and main); CLIError for another name."""
    try:
        return _registry().load(name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def recipe_path(name):
    return recipe(name).__file__


def resolve_config(args):
    """The recipe's resolved config, in this process (no TensorFlow): CLIError naming the
    file or --set item and the key on bad input."""
    from bwkeras import config
    from recipes import args as recipe_args

    module = recipe(args.recipe)
    runs_dir = None
    if args.command in ("run", "submit"):
        runs_dir = getattr(args, "runs_dir", None) or "runs"
    try:
        return recipe_args.resolve(module.CONFIG(), args.config, args.sets,
                                   resume=getattr(args, "resume", None), runs_dir=runs_dir)
    except config.ConfigError as exc:
        raise CLIError(str(exc)) from None


def model_parallel_recipes():
    """The recipes whose config has model.model_parallel, in the registry's order."""
    return [name for name in _registry().NAMES
            if hasattr(getattr(recipe(name).CONFIG(), "model", None), "model_parallel")]


def _horovodrun():
    local = os.path.join(os.path.dirname(sys.executable), "horovodrun")
    found = local if os.path.exists(local) else shutil.which("horovodrun")
    if not found:
        raise CLIError("-np > 1 needs horovodrun on PATH: run `make setup` (it builds Horovod "
                       "against this TensorFlow)")
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


def elastic_hosts(slots):
    """The discovery script's host lines for `slots` local slots. Horovod leaves out the
    whole host of a failed worker, so one name for every slot would end the job at the
    first failure: the slots are split over two names of this machine (localhost and
    127.0.0.1), and a failed worker takes only its name's slots with it."""
    first = (slots + 1) // 2
    return [f"localhost:{first}"] + ([f"127.0.0.1:{slots - first}"] if slots > first else [])


def _run_elastic(args):
    """`run --elastic`: horovodrun --min-np/--max-np with a discovery script for this
    machine's slots, written for the job and removed after it."""
    import tempfile

    min_np = 1 if args.min_np is None else args.min_np
    max_np = args.np if args.max_np is None else args.max_np
    if not 1 <= min_np <= args.np <= max_np:
        raise CLIError(f"--elastic needs 1 <= --min-np <= -np <= --max-np, got --min-np {min_np}, "
                       f"-np {args.np}, --max-np {max_np}")
    args.sets = list(args.sets) + ["train.elastic=true"]
    resolve_config(args)  # bad input fails here, before any process or folder starts
    with tempfile.TemporaryDirectory(prefix="bwkeras-elastic-") as tmp:
        script = os.path.join(tmp, "discover-hosts.sh")
        with open(script, "w", encoding="utf-8") as fh:
            fh.write("#!/bin/sh\n" + "".join(f"echo {h}\n" for h in elastic_hosts(max_np)))
        os.chmod(script, 0o755)
        cmd = [_horovodrun(), "-np", str(args.np), "--min-np", str(min_np), "--max-np", str(max_np),
               "--host-discovery-script", script, "--network-interface", "lo",
               sys.executable, recipe_path(args.recipe), *_recipe_args(args)]
        return subprocess.call(cmd)


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
    run.add_argument("--elastic", action="store_true",
                     help="elastic training (train.elastic): a rank that fails leaves the others "
                          "training from the last commit, down to --min-np ranks")
    run.add_argument("--min-np", type=int, default=None, metavar="M",
                     help="with --elastic: fewest ranks to go on with (default 1)")
    run.add_argument("--max-np", type=int, default=None, metavar="K",
                     help="with --elastic: most ranks (default -np)")
    _add_config_args(run)
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    run.add_argument("--runs-dir", metavar="DIR", help="where run folders go (default: runs)")
    sub_ = sub.add_parser(
        "submit", help="render a Slurm or PBS batch script for a recipe and submit it",
        description="Render the batch script (bwkeras.batch) into a new run folder, then "
                    "submit it with sbatch / qsub (or only write it, with --dry-run).")
    sub_.add_argument("recipe")
    sub_.add_argument("--scheduler", default="slurm", help="slurm (sbatch) or pbs (qsub)")
    sub_.add_argument("--nodes", type=int, default=1, metavar="N")
    sub_.add_argument("--tasks-per-node", type=int, default=1, metavar="K",
                      help="ranks per node")
    sub_.add_argument("--cpus-per-task", type=int, default=1, metavar="C",
                      help="cores per rank (aprun -d)")
    sub_.add_argument("--time", default="01:00:00", metavar="HH:MM:SS", help="time limit")
    sub_.add_argument("--account", default=os.environ.get("BWKERAS_ACCOUNT"),
                      help="account to charge (default: $BWKERAS_ACCOUNT)")
    sub_.add_argument("--partition", default=os.environ.get("BWKERAS_PARTITION"),
                      help="Slurm partition or PBS queue (default: $BWKERAS_PARTITION)")
    sub_.add_argument("--launcher", default=None,
                      help="srun | horovodrun | mpirun (slurm), aprun | mpirun (pbs)")
    sub_.add_argument("--job-name", default=None, help="default: bwkeras-RECIPE")
    sub_.add_argument("--requeue", action="store_true",
                      help="on the time-limit warning: checkpoint, requeue, resume")
    sub_.add_argument("--min-nodes", type=int, default=None, metavar="M",
                      help="when a node fails, relaunch from the last checkpoint on the nodes "
                           "that still answer, down to M (srun; aprun / mpirun on PBS); "
                           "with --elastic: fewest nodes to go on training with")
    sub_.add_argument("--elastic", action="store_true",
                      help="elastic training (train.elastic, horovodrun with Gloo): a node "
                           "that stops answering leaves the others training from the last "
                           "commit, one that answers again rejoins (Slurm)")
    sub_.add_argument("--model-parallel", type=int, default=None, metavar="K",
                      help="model parallelism (model.model_parallel=K; mlp and sunspots): "
                           "groups of K ranks hold one model between them, the data is "
                           "sharded over the groups; K must divide nodes x tasks-per-node")
    sub_.add_argument("--signal-seconds", type=int, default=120, metavar="S",
                      help="warning signal this long before the time limit (default: 120)")
    sub_.add_argument("--runs-dir", default="runs", metavar="DIR")
    _add_config_args(sub_)
    sub_.add_argument("--dry-run", action="store_true", help="write the script, do not submit")
    return parser


def _submit(args):
    """Validate everything first (nothing is written or submitted on bad input), then
    write RUNS_DIR/RECIPE-TIMESTAMP/job.sbatch (or job.pbs) and submit it."""

    from . import batch
    from .runs import new_run_dir

    path = recipe_path(args.recipe)
    if args.elastic:
        args.sets = list(args.sets) + ["train.elastic=true"]
    if args.model_parallel is not None:
        takes = model_parallel_recipes()
        if args.recipe not in takes:
            raise CLIError(f"--model-parallel: the {args.recipe} recipe has no "
                           f"model.model_parallel; recipes that do: {', '.join(takes)}")
        args.sets = list(args.sets) + [f"model.model_parallel={args.model_parallel}"]

    def job(run_dir):
        log = "job-%j.out" if args.scheduler == "slurm" else "job.out"
        return batch.JobSpec(
            command=[sys.executable, path, "--run-dir", run_dir, *_recipe_args(args)],
            scheduler=args.scheduler, nodes=args.nodes, tasks_per_node=args.tasks_per_node,
            cpus_per_task=args.cpus_per_task, time=args.time, account=args.account,
            partition=args.partition, launcher=args.launcher,
            job_name=args.job_name or f"bwkeras-{args.recipe}", workdir=os.getcwd(),
            output=os.path.join(run_dir, log), requeue=args.requeue,
            signal_seconds=args.signal_seconds, min_nodes=args.min_nodes, elastic=args.elastic,
            model_parallel=args.model_parallel,
            env={"BWKERAS_ATTEMPTS_LOG": os.path.join(run_dir, "attempts.log")}
            if args.min_nodes and not args.elastic else {},
        )

    try:
        spec = job(os.path.abspath(os.path.join(args.runs_dir, args.recipe)))  # checks only
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    command = batch.SUBMIT_COMMANDS[spec.scheduler]
    if not args.dry_run and shutil.which(command) is None:
        raise CLIError(f"{command} is not on PATH: cannot submit to {spec.scheduler} "
                       "(--dry-run writes the script only)")
    cfg = resolve_config(args)  # an unknown key or a value of the wrong type fails here
    # model.model_parallel set in a --config file or by --set: checked against the tasks too
    args.model_parallel = getattr(getattr(cfg, "model", None), "model_parallel", None)
    try:
        job(os.path.abspath(os.path.join(args.runs_dir, args.recipe)))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    try:
        run_dir = os.path.abspath(new_run_dir(args.runs_dir, args.recipe))
    except OSError as exc:
        raise CLIError(f"cannot create a run folder in {args.runs_dir}: "
                       f"{exc.strerror or exc}") from None
    spec = job(run_dir)
    script = batch.write_script(spec, run_dir)
    print(f"script: {script}")
    if args.dry_run:
        return 0
    try:
        job_id = batch.submit(spec, script)
    except (RuntimeError, FileNotFoundError) as exc:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing was submitted: leave nothing
        raise CLIError(str(exc)) from None
    print(f"submitted job {job_id}; outputs in {run_dir}")
    return 0


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
        if args.command == "submit":
            return _submit(args)
        if args.command == "show-config":
            from bwkeras import config

            sys.stdout.write(config.to_yaml(resolve_config(args)))
            return 0
        if args.np < 1:
            raise CLIError(f"-np must be >= 1, got {args.np}")
        if args.elastic:
            return _run_elastic(args)
        if args.min_np is not None or args.max_np is not None:
            raise CLIError("--min-np and --max-np need --elastic")
        resolve_config(args)  # bad input fails here, before any process or folder starts
        cmd = [sys.executable, recipe_path(args.recipe), *_recipe_args(args)]
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
