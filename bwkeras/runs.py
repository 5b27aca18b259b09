"""Run directories, atomic output files, checkpoints and resume.

    run = runs.start("sunspots", cfg)                  # runs/sunspots-20250101-120000/
    initial_epoch = run.restore(model)                 # 0, or the epoch after the last checkpoint
    model.fit(..., initial_epoch=initial_epoch,
              callbacks=dist.callbacks() + run.callbacks())
    run.write_metrics({...}); run.write_report(...)

Only the chief (rank 0) creates the directory and writes; the other ranks get a `Run` with
the same path whose writers do nothing, so a recipe has one code path. Every file is
written to a temporary file in the same folder, flushed to disk and renamed into place
(``os.replace`` is atomic on POSIX): a reader or a crash never sees half a file. An existing
run directory is never reused for a new run; ``--resume RUN_DIR`` continues one in place.
"""
import contextlib
import csv
import datetime
import io
import json
import math
import os
import re
import tempfile

import keras
import numpy as np
from ._keras import build_optimizer
from .exit_codes import EXIT_PREEMPTED

__all__ = [
    "atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
    "atomic_write_yaml", "atomic_write_csv", "save_model", "Run", "start", "Checkpoint",
    "HistoryCSV", "latest_checkpoint", "markdown_table", "new_run_dir",
]

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
_RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# ---- atomic writes -------------------------------------------------------------------------

def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    The temporary name ends like `path` (``suffix`` defaults to its extension) so writers
    that check extensions (Keras' ``model.save``) accept it. On an exception the temporary
    file is removed and `path` keeps its previous content.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if suffix is None:
        suffix = os.path.splitext(path)[1]
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}",
                               dir=directory)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
        yield tmp
        with open(tmp, "rb+") as fh:
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path, data):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_write_text(path, text):
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode("utf-8"))


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} {obj!r} as JSON")


def _json_safe(obj):
    """NaN and infinities become null: strict JSON has no spelling for them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    return obj


def atomic_write_json(path, obj):
    text = json.dumps(_json_safe(obj), indent=2, default=_json_default, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_write_yaml(path, obj):
    import yaml

    return atomic_write_text(path, yaml.safe_dump(_json_safe(obj), sort_keys=False))


def atomic_write_csv(path, rows, fieldnames=None):
    """Write a list of dicts as CSV (columns: `fieldnames`, else the union in first-seen order)."""
    rows = list(rows)
    if fieldnames is None:
        fieldnames = []
        for row in rows:
            fieldnames.extend(k for k in row if k not in fieldnames)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in fieldnames})
    return atomic_write_text(path, buf.getvalue())


def save_model(model, path):
    """``model.save(path)`` (a .keras file: architecture, weights, optimizer), atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"model files are saved in the .keras format; got path {path!r}")
    with atomic_path(path) as tmp:
        os.unlink(tmp)  # Keras 2 refuses to overwrite without asking; let it create the file
        model.save(tmp)
    return path


def markdown_table(rows, columns=None, floatfmt=".4g"):
    """A GitHub-flavoured markdown table from a list of dicts."""
    rows = list(rows)
    if columns is None:
        columns = []
        for row in rows:
            columns.extend(k for k in row if k not in columns)

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if not math.isfinite(v) else format(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    lines = ["| " + " | ".join(str(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# ---- run directories -----------------------------------------------------------------------

def _chief():
    from . import distributed as dist

    return dist.is_chief()


def _share(value):
    """The chief's `value` on every rank (identity in a single process)."""
    from . import distributed as dist

    if dist.size() == 1:
        return value
    return dist.allgather_object(value)[0]


def new_run_dir(runs_dir, recipe, timestamp=None):
    """Create and return a new, empty RUNS_DIR/RECIPE-TIMESTAMP[-N] (never an existing one)."""
    timestamp = timestamp or datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
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


def _checkpoint_dir(run_dir, tag=None):
    return os.path.join(run_dir, CHECKPOINTS, *([tag] if tag else []))


def _has_checkpoint(run_dir):
    """True when any model of the run (tagged or not) finished an epoch."""
    for _root, _dirs, files in os.walk(_checkpoint_dir(run_dir)):
        if LATEST in files:
            return True
    return False


def latest_checkpoint(run_dir, tag=None):
    """(epoch, path) of the newest complete checkpoint in `run_dir` (of model `tag`), or None."""
    directory = _checkpoint_dir(run_dir, tag)
    state_file = os.path.join(directory, LATEST)
    if not os.path.exists(state_file):
        return None
    with open(state_file, encoding="utf-8") as fh:
        state = json.load(fh)
    path = os.path.join(directory, state["file"])
    if not os.path.exists(path):
        raise FileNotFoundError(f"{state_file} names {state['file']}, which does not exist")
    return int(state["epoch"]), path


class Run:
    """One run's output folder; its writers act on the chief only and return the path."""

    def __init__(self, path, recipe, config=None, resumed=False):
        self.path = path
        self.recipe = recipe
        self.config = config
        self.resumed = resumed
        self.is_chief = _chief()
        self.initial_epoch = 0
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

    # writers (chief only) -----------------------------------------------------------
    def write_config(self, cfg=None):
        cfg = cfg if cfg is not None else self.config
        if self.is_chief and cfg is not None:
            from .config import dump

            dump(cfg, self.file("config.yaml"))
        return self.file("config.yaml")

    def write_metrics(self, metrics):
        if self.is_chief:
            atomic_write_json(self.file("metrics.json"), metrics)
        return self.file("metrics.json")

    def write_json(self, name, obj):
        if self.is_chief:
            atomic_write_json(self.file(name), obj)
        return self.file(name)

    def write_csv(self, name, rows, fieldnames=None):
        if self.is_chief:
            atomic_write_csv(self.file(name), rows, fieldnames)
        return self.file(name)

    def write_text(self, name, text):
        if self.is_chief:
            atomic_write_text(self.file(name), text)
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
        path = self.file(f"history-{tag}.csv" if tag else "history.csv")
        if not os.path.exists(path):
            return {}
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        columns = [c for c in (rows[0] if rows else {}) if c != "epoch"]
        return {c: [float(r[c]) if r[c] not in ("", None) else math.nan for r in rows]
                for c in columns}

    def save_model(self, model, name="model.keras"):
        if self.is_chief:
            save_model(model, self.file(name))
        return self.file(name)

    def write_report(self, title, sections=(), plots=(), tables=()):
        """report.md: a title, markdown tables, text sections and the plots (relative links).

        tables: (caption, rows) pairs, rows a list of dicts; sections: (heading, text)
        pairs; plots: paths of PNG files inside the run directory.
        """
        lines = [f"# {title}", "", f"Run directory: `{os.path.basename(self.path)}`"]
        if self.resumed:
            lines.append(f"Resumed from epoch {self.initial_epoch}.")
        lines.append("")
        for caption, rows in tables:
            lines += [f"## {caption}", "", markdown_table(rows), ""]
        for heading, text in sections:
            lines += [f"## {heading}", "", text.rstrip(), ""]
        if plots:
            lines += ["## Plots", ""]
            for plot in plots:
                rel = os.path.relpath(plot, self.path)
                name = os.path.splitext(os.path.basename(plot))[0].replace("_", " ")
                lines += [f"![{name}]({rel})", ""]
        lines += ["Resolved configuration: [config.yaml](config.yaml)."]
        if self.is_chief:
            histories = sorted(n for n in os.listdir(self.path)
                               if n.startswith("history") and n.endswith(".csv"))
            if histories:
                lines += ["Training history: " + ", ".join(f"[{n}]({n})" for n in histories) + "."]
        return self.write_text("report.md", "\n".join(lines) + "\n")

    # training -------------------------------------------------------------------------
    def restore(self, model, tag=None):
        """Load the last checkpoint of a resumed run into `model` (weights and optimizer).

        Returns the epoch to pass as ``fit(initial_epoch=...)``: 0 for a new run. Rank 0
        loads the checkpoint; the distributed callbacks broadcast its state to the other
        ranks when training begins. `tag` names one of several models trained in a run
        (as in ``callbacks(tag=...)``).
        """
        if not self.resumed:
            self.initial_epoch = 0
            return 0
        # Every rank creates its optimizer slots now, so that all ranks hold the same
        # variables when the chief's restored state is broadcast at the start of training.
        build_optimizer(model)
        found = None
        if self.is_chief:
            found = latest_checkpoint(self.path, tag)
            if found is None and not self.resume_optional:
                where = os.path.relpath(os.path.join(_checkpoint_dir(self.path, tag), LATEST),
                                        self.path)
                raise FileNotFoundError(
                    f"cannot resume {self.path}: it has no {where} "
                    "(no epoch finished before it stopped)"
                )
            if found is not None:
                load_checkpoint(model, found[1])
        epoch = _share(found[0] if found else 0)
        self.initial_epoch = int(epoch)
        return self.initial_epoch

    def callbacks(self, checkpoint=True, history=True, tensorboard=None, keep=None, tag=None):
        """Callbacks to put AFTER ``dist.callbacks()`` (they then see averaged metrics).

        history.csv and checkpoints/ each epoch; TensorBoard logs in tensorboard/. With
        several models in one run, `tag` keeps them apart: history-TAG.csv, checkpoints/TAG/.
        """
        cfg_train = getattr(self.config, "train", None)
        if tensorboard is None:
            tensorboard = bool(getattr(cfg_train, "tensorboard", False))
        if keep is None:
            keep = int(getattr(cfg_train, "checkpoint_keep", 2))
        out = []
        if history:
            name = f"history-{tag}.csv" if tag else "history.csv"
            out.append(HistoryCSV(self.file(name), enabled=self.is_chief))
        if checkpoint:
            out.append(Checkpoint(_checkpoint_dir(self.path, tag), keep=keep,
                                  enabled=self.is_chief))
        if tensorboard and self.is_chief:
            logs = self.file("tensorboard", *([tag] if tag else []))
            out.append(keras.callbacks.TensorBoard(log_dir=logs,
                                                   write_graph=False, profile_batch=0))
        from . import distributed as dist

        # replicas.json: whether every rank ended with the same weights (it must).
        name = f"replicas-{tag}.json" if tag else "replicas.json"
        out.append(dist.ReplicaDigest(on_result=lambda r: self.write_json(name, r)))
        # Last, so the epoch's checkpoint is written before a stop request ends training
        # (with the exit status batch scripts requeue on).
        out.append(dist.StopOnSignal(exit_code=EXIT_PREEMPTED))
        return out


def start(recipe, config=None, args=None, *, runs_dir="runs", resume=None, run_dir=None,
          timestamp=None):
    """The run folder: new ``RUNS_DIR/RECIPE-TIMESTAMP``, `resume` (an existing run to
    continue), or `run_dir` (start there, or continue from its last checkpoint if it
    holds one: what a batch job needs, since a requeued job repeats its command line).

    `args`, the namespace from ``config.parse_args``, supplies runs_dir, resume and run_dir.
    Call it on every rank: the chief creates the folder and writes config.yaml, and every
    rank learns the same path.
    """
    if args is not None:
        runs_dir = getattr(args, "runs_dir", None) or runs_dir
        resume = getattr(args, "resume", None)
        run_dir = getattr(args, "run_dir", None)
    if not isinstance(recipe, str) or not _RECIPE_NAME.match(recipe):
        raise ValueError(f"recipe name must be letters, digits, '-', '_' or '.', got {recipe!r}")
    if resume is not None and run_dir is not None:
        raise ValueError("give --resume or --run-dir, not both")
    if resume is not None:
        path = os.fspath(resume)
        if not os.path.isdir(path) and _chief():
            raise FileNotFoundError(f"--resume {path}: no such run directory")
        run = Run(path, recipe, config, resumed=True)
    elif run_dir is not None:
        path = os.fspath(run_dir)
        resumed = None
        if _chief():
            if os.path.exists(os.path.join(path, "metrics.json")):
                raise FileExistsError(f"--run-dir {path} holds a finished run; a run directory "
                                      "is never overwritten")
            os.makedirs(path, exist_ok=True)
            resumed = _has_checkpoint(path)
        run = Run(path, recipe, config, resumed=_share(resumed))
        run.resume_optional = True
    else:
        path = None
        if _chief():
            path = new_run_dir(os.fspath(runs_dir), recipe, timestamp)
        path = _share(path)
        run = Run(path, recipe, config, resumed=False)
    run.write_config()
    return run


# ---- checkpoints ---------------------------------------------------------------------------

def load_checkpoint(model, path):
    """Weights and optimizer state from the .keras file `path` into the compiled `model`."""
    build_optimizer(model)  # slots must exist to receive the saved state
    model.load_weights(path)
    return model


class HistoryCSV(keras.callbacks.Callback):
    """Rewrite history.csv (atomically) after every epoch, keeping earlier epochs' rows
    from before a resume."""

    def __init__(self, path, enabled=True):
        super().__init__()
        self.path = path
        self.enabled = enabled
        self.rows = []

    def on_train_begin(self, logs=None):
        self.rows = []
        if self.enabled and os.path.exists(self.path):
            with open(self.path, newline="", encoding="utf-8") as fh:
                self.rows = list(csv.DictReader(fh))

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled:
            return
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1] + [row]
        atomic_write_csv(self.path, self.rows)


class Checkpoint(keras.callbacks.Callback):
    """Each epoch: model + optimizer as checkpoints/epoch-NNNN.keras, then latest.json.

    The state file is replaced only after the new checkpoint is completely on disk, and
    an epoch with a non-finite loss writes nothing, so the last good checkpoint stays
    the one `--resume` uses. The newest `keep` checkpoints are kept.
    """

    def __init__(self, directory, keep=2, enabled=True):
        super().__init__()
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep must be an integer >= 1, got {keep!r}")
        self.directory = directory
        self.keep = keep
        self.enabled = enabled
        self.skipped = []

    def on_epoch_end(self, epoch, logs=None):
        if not self.enabled:
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.skipped.append(epoch + 1)
            print(f"\nEpoch {epoch + 1}: loss is {float(loss)}; checkpoint not written, "
                  "the last good one is kept.")
            return
        os.makedirs(self.directory, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.keras"
        save_model(self.model, os.path.join(self.directory, name))
        atomic_write_json(os.path.join(self.directory, LATEST),
                          {"epoch": epoch + 1, "file": name})
        self._prune(name)

    def _prune(self, newest):
        names = sorted(n for n in os.listdir(self.directory)
                       if re.fullmatch(r"epoch-\d{4,}\.keras", n))
        for old in names[:-self.keep]:
            if old != newest:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.directory, old))
