"""A run's checkpoints on disk: CHECKPOINTS/[TAG/]epoch-NNNN.keras and latest.json.

    save(model, directory, epoch, keep=2)      # the .keras file first, then latest.json
    latest(run_dir, tag=None)                  # (epoch, path) of the newest, or None
    load(model, path)                          # weights and optimizer state into `model`

latest.json is replaced only after the new checkpoint is completely on disk, so it always
names a whole file: the one ``--resume`` uses. Keras-free at import (it calls the model's
own methods), so a run folder can be inspected without starting TensorFlow.
"""
import contextlib
import json
import os
import re

from . import atomic

__all__ = ["CHECKPOINTS", "LATEST", "directory", "exists", "latest", "save", "load",
           "save_model"]

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
_FILE = re.compile(r"epoch-\d{4,}\.keras")


def directory(run_dir, tag=None):
    """Where the checkpoints of model `tag` (or the run's one model) live."""
    return os.path.join(run_dir, CHECKPOINTS, *([tag] if tag else []))


def exists(run_dir):
    """True when any model of the run (tagged or not) has a complete checkpoint."""
    for _root, _dirs, files in os.walk(directory(run_dir)):
        if LATEST in files:
            return True
    return False


def latest(run_dir, tag=None):
    """(epoch, path) of the newest complete checkpoint of model `tag`, or None."""
    folder = directory(run_dir, tag)
    state_file = os.path.join(folder, LATEST)
    if not os.path.exists(state_file):
        return None
    with open(state_file, encoding="utf-8") as fh:
        state = json.load(fh)
    path = os.path.join(folder, state["file"])
    if not os.path.exists(path):
        raise FileNotFoundError(f"{state_file} names {state['file']}, which does not exist")
    return int(state["epoch"]), path


def save_model(model, path):
    """``model.save(path)`` (a .keras file: architecture, weights, optimizer), atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"model files are saved in the .keras format; got path {path!r}")
    with atomic.atomic_path(path) as tmp:
        os.unlink(tmp)  # Keras 2 refuses to overwrite without asking; let it create the file
        model.save(tmp)
    return path


def save(model, folder, epoch, keep=2):
    """Checkpoint `model` as FOLDER/epoch-NNNN.keras (`epoch` counted from 1), point
    latest.json at it, and keep the newest `keep` checkpoints. Returns the file's path."""
    os.makedirs(folder, exist_ok=True)
    name = f"epoch-{epoch:04d}.keras"
    path = save_model(model, os.path.join(folder, name))
    atomic.write_json(os.path.join(folder, LATEST), {"epoch": epoch, "file": name})
    for old in sorted(n for n in os.listdir(folder) if _FILE.fullmatch(n))[:-keep]:
        if old != name:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, old))
    return path


def load(model, path):
    """Weights and optimizer state from the .keras file `path` into the compiled `model`."""
    from ._keras import build_optimizer

    build_optimizer(model)  # slots must exist to receive the saved state
    model.load_weights(path)
    return model
