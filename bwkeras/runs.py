"""Run folders: one per run, created once, written atomically, never reused.

    run = runs.start("sunspots", cfg, args)            # runs/sunspots-20250101-120000/
    run.write_metrics({...}); run.write_report(...)    # chief only; every rank may call

Only the chief (rank 0) creates the folder and writes; the other ranks get a `Run` with the
same path whose writers do nothing, so a recipe has one code path. An existing folder is
never reused for a new run; ``--resume RUN_DIR`` continues one in place and ``--run-dir``
starts in a given folder or continues it (what a requeued batch job needs). Training a
model into a run (restore, checkpoints, history) is `bwkeras.training`.

Keras-free: ``bwkeras submit`` creates a run folder without starting TensorFlow.
"""
import csv
import datetime
import math
import os
import re

from . import atomic, checkpoints, report

__all__ = ["Run", "start", "new_run_dir", "check_target"]

_RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONFIG_FILE = "config.yaml"


def _writable_parent(path, what):
    """Raise OSError unless `path` is a directory that can be written, or can be created
    under its nearest existing ancestor."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise NotADirectoryError(f"{what} {path}: {probe} exists and is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path}: {probe} is not writable (read-only file "
                              "system or no permission)")


def check_target(runs_dir=None, resume=None, run_dir=None):
    """Refuse, before anything is created or changed, a target a run cannot use:
    `runs_dir` that is a file or not writable, `resume` that is not a run folder with an
    intact checkpoint, `run_dir` that is a file, holds a finished run or a damaged one.
    Raises OSError or ValueError (`checkpoints.CheckpointError`) naming the path."""
    if resume is not None:
        path = os.fspath(resume)
        if not os.path.isdir(path):
            raise FileNotFoundError(f"--resume {path}: no such run directory")
        if not os.path.exists(os.path.join(path, CONFIG_FILE)):
            raise FileNotFoundError(f"--resume {path}: not a run directory (it has no "
                                    f"{CONFIG_FILE})")
        if not checkpoints.exists(path):
            raise FileNotFoundError(f"cannot resume {path}: it has no "
                                    f"{checkpoints.CHECKPOINTS}/{checkpoints.LATEST} (no epoch "
                                    "finished before it stopped)")
        checkpoints.verify_run(path)
        _writable_parent(path, "--resume")
    elif run_dir is not None:
        path = os.fspath(run_dir)
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"--run-dir {path} exists and is not a directory")
        if os.path.exists(os.path.join(path, "metrics.json")):
            raise FileExistsError(f"--run-dir {path} holds a finished run; a run directory "
                                  "is never overwritten")
        if os.path.isdir(path):
            checkpoints.verify_run(path)
        _writable_parent(path, "--run-dir")
    elif runs_dir is not None:
        path = os.fspath(runs_dir)
        if os.path.exists(path) and not os.path.isdir(path):
            raise NotADirectoryError(f"runs directory {path} exists and is not a directory")
        _writable_parent(path, "runs directory")


def new_run_dir(runs_dir, recipe, timestamp=None):
    """Create and return a new, empty RUNS_DIR/RECIPE-TIMESTAMP[-N] (never an existing one)."""
    timestamp = timestamp or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    runs_dir = os.fspath(runs_dir)
    if os.path.exists(runs_dir) and not os.path.isdir(runs_dir):
        raise NotADirectoryError(f"runs directory {runs_dir} exists and is not a directory")
    os.makedirs(runs_dir, exist_ok=True)
    base = os.path.join(runs_dir, f"{recipe}-{timestamp}")
    for i in range(1, 1000):
        candidate = base if i == 1 else f"{base}-{i}"
        try:
            os.mkdir(candidate)  # exclusive: fails if it exists, so nothing is ever reused
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"could not create a new run directory next to {base}")


class Run:
    """One run's output folder; its writers act on the chief only and return the path.

    settings: the run's own section (`bwkeras.training.RunConfig`: checkpoints
    kept, TensorBoard), from ``config.run`` when the config has one.
    """

    def __init__(self, path, recipe, config=None, resumed=False, is_chief=None, settings=None):
        from . import training

        self.path = path
        self.recipe = recipe
        self.config = config
        self.resumed = resumed
        if is_chief is None:
            from . import distributed as dist

            is_chief = dist.is_chief()
        self.is_chief = is_chief
        self.settings = settings if settings is not None else training.run_settings(config)
        self.initial_epoch = 0
        self.initial_step = 0      # steps of epoch initial_epoch done before a resume
        # --run-dir: a model without a checkpoint yet starts from scratch instead of failing
        self.resume_optional = False

    def __repr__(self):
        return f"Run({self.path!r}, recipe={self.recipe!r}, resumed={self.resumed})"

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    def plot_path(self, name):
        """Where plot `name` goes: plots/NAME.png (the folder is created on the chief)."""
        if not name.endswith(".png"):
            name += ".png"
        if self.is_chief:
            os.makedirs(self.file("plots"), exist_ok=True)
        return self.file("plots", name)

    def history_path(self, tag=None):
        """history.csv, or history-TAG.csv for model `tag` of several in one run."""
        return self.file(f"history-{tag}.csv" if tag else "history.csv")

    def checkpoint_dir(self, tag=None):
        return checkpoints.directory(self.path, tag)

    # writers (chief only) -----------------------------------------------------------
    def write_config(self, cfg=None):
        cfg = cfg if cfg is not None else self.config
        if self.is_chief and cfg is not None:
            from . import config

            config.dump(cfg, self.file(CONFIG_FILE))
        return self.file(CONFIG_FILE)

    def write_metrics(self, metrics):
        return self.write_json("metrics.json", metrics)

    def write_json(self, name, obj):
        if self.is_chief:
            atomic.write_json(self.file(name), obj)
        return self.file(name)

    def write_csv(self, name, rows, fieldnames=None):
        if self.is_chief:
            atomic.write_csv(self.file(name), rows, fieldnames)
        return self.file(name)

    def write_text(self, name, text):
        if self.is_chief:
            atomic.write_text(self.file(name), text)
        return self.file(name)

    def write_history(self, history):
        """history.csv from a Keras History (or its dict), one row per epoch."""
        logs = getattr(history, "history", history)
        epochs = getattr(history, "epoch", None)
        n = max((len(v) for v in logs.values()), default=0)
        if epochs is None or len(epochs) != n:
            epochs = list(range(n))
        rows = [dict(epoch=int(e) + 1, **{k: float(v[i]) for k, v in logs.items()})
                for i, e in enumerate(epochs)]
        return self.write_csv("history.csv", rows)

    def read_history(self, tag=None):
        """{column: [values per epoch]} from history.csv (history-TAG.csv), all epochs
        including those before a resume; {} where the file does not exist."""
        path = self.history_path(tag)
        if not os.path.exists(path):
            return {}
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        columns = [c for c in (rows[0] if rows else {}) if c != "epoch"]
        return {c: [float(r[c]) if r[c] not in ("", None) else math.nan for r in rows]
                for c in columns}

    def save_model(self, model, name="model.keras"):
        """The model as NAME (a .keras file) in the run folder, written atomically by the
        chief. A sharded model (``model_parallel`` > 1) is gathered whole first, so every
        rank must call this for it (a collective); every rank raises if the write failed."""
        if checkpoints.is_sharded(model):
            from . import distributed as dist

            def write_on_chief(whole):
                if self.is_chief and whole is not None:
                    checkpoints.save_model(whole, self.file(name))

            error = None
            try:
                whole = checkpoints.gathered(model)
            except (ValueError, TypeError, OSError) as exc:
                whole, error = None, exc
            dist.agree(error, name=f"bwkeras.save_model.gather.{name}")
            dist.agreed(write_on_chief, whole, name=f"bwkeras.save_model.{name}")
        elif self.is_chief:
            checkpoints.save_model(model, self.file(name))
        return self.file(name)

    def write_report(self, title, sections=(), plots=(), tables=()):
        """report.md (see `bwkeras.report.run_report` for the arguments)."""
        if not self.is_chief:
            return self.file("report.md")
        text = report.run_report(self.path, title, sections=sections, plots=plots,
                                 tables=tables,
                                 resumed_from=self.initial_epoch if self.resumed else None)
        return self.write_text("report.md", text)


def _open_folder(recipe, cfg, runs_dir, resume, run_dir, timestamp):
    """The chief's half of `start`: (path, resumed), the folder made and config written."""
    from . import config

    if resume is not None:
        check_target(resume=resume)
        path, resumed = os.fspath(resume), True
    elif run_dir is not None:
        check_target(run_dir=run_dir)
        path = os.fspath(run_dir)
        os.makedirs(path, exist_ok=True)
        resumed = checkpoints.exists(path)
    else:
        path, resumed = new_run_dir(runs_dir, recipe, timestamp), False
    if resumed:
        # what an interrupted write left behind (a kill during a checkpoint)
        checkpoints.remove_stale_temporaries(path)
    if cfg is not None:
        config.dump(cfg, os.path.join(path, CONFIG_FILE))
    return path, resumed


def start(recipe, config=None, args=None, *, runs_dir="runs", resume=None, run_dir=None,
          timestamp=None):
    """The run folder: new ``RUNS_DIR/RECIPE-TIMESTAMP``, `resume` (an existing run to
    continue), or `run_dir` (start there, or continue from its last checkpoint if it
    holds one: what a batch job needs, since a requeued job repeats its command line).

    `args`, the namespace from the recipes' command line, supplies runs_dir, resume and
    run_dir. Call it on every rank: the chief creates the folder and writes config.yaml,
    every rank learns the same path, and when the chief cannot (a read-only file system,
    a --resume folder that is not a run) every rank raises, none is left waiting.
    """
    from . import distributed as dist

    if args is not None:
        runs_dir = getattr(args, "runs_dir", None) or runs_dir
        resume = getattr(args, "resume", None)
        run_dir = getattr(args, "run_dir", None)
    if not isinstance(recipe, str) or not _RECIPE_NAME.match(recipe):
        raise ValueError(f"recipe name must be letters, digits, '-', '_' or '.', got {recipe!r}")
    if resume is not None and run_dir is not None:
        raise ValueError("give --resume or --run-dir, not both")
    chief = dist.is_chief()

    def open_on_chief():
        return _open_folder(recipe, config, runs_dir, resume, run_dir, timestamp) if chief else None

    opened = dist.agreed(open_on_chief, name="bwkeras.runs.start")
    path, resumed = dist.broadcast_object(opened, name="bwkeras.runs.path")
    run = Run(path, recipe, config, resumed=resumed, is_chief=chief)
    run.resume_optional = run_dir is not None
    return run
