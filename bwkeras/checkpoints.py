"""A run's checkpoints on disk: CHECKPOINTS/[TAG/]epoch-NNNN.keras and latest.json.

    save(model, directory, epoch, keep=2)      # the .keras file first, then latest.json
    gathered(model)                            # a sharded model whole, on the chief
    latest(run_dir, tag=None)                  # (epoch, path) of the newest intact one, or None
    load(model, path)                          # weights and optimizer state into `model`

latest.json (the index) is replaced only after the new checkpoint is completely on disk,
so it always names a whole file: the one ``--resume`` uses. It records each kept
checkpoint's epoch, file name and SHA-256, newest last, and where known the number of
ranks that trained it and the optimizer's learning rate then (Keras 2 does not keep the
rate in the .keras file; a run resumed on another number of ranks re-scales it):

    {"epoch": 12, "file": "epoch-0012.keras", "sha256": "...", "ranks": 4, "learning_rate": 0.04,
     "checkpoints": [{"epoch": 11, "file": "epoch-0011.keras", "sha256": "..."}, {...12...}]}

A run stopped in the middle of an epoch (a stop request with ``train.commit_steps``) keeps
that state beside the epoch checkpoints, as ``partial.keras`` and its index
``partial.json`` (the epochs finished, the steps done in the next one, the SHA-256):

    {"epoch": 3, "step": 40, "file": "partial.keras", "sha256": "..."}

`save_partial` writes them, `partial` reads them back and `save` removes them once a later
epoch is complete, so a partial checkpoint is only ever newer than the newest epoch.

A damaged run folder is never silently restarted: `latest` verifies the checksum of the
checkpoint it returns; a corrupt one is named in a `CheckpointWarning` and the newest intact
one is used; a missing or damaged index is rebuilt from the checkpoint files beside it
(each checked as a whole zip archive); when no checkpoint is intact it raises
`CheckpointError`. Names in the index must be checkpoint file names in that folder (no
path reaches outside the run), and files are ordered by their epoch number, not as text.

A sharded model (``model_parallel`` > 1) is written whole, as the same model in one
process: every rank calls `gathered` and the chief saves what it returns (weights only:
the optimizer's state of a sharded model is not in the file, and a resumed sharded run
starts its optimizer afresh from the restored weights).

Keras-free at import (it calls the model's own methods), so a run folder can be inspected
without starting TensorFlow.
"""
import contextlib
import hashlib
import json
import math
import os
import re
import warnings
import zipfile

import numpy as np

from . import atomic
from ._checks import integer

__all__ = ["CHECKPOINTS", "LATEST", "CheckpointError", "CheckpointWarning", "directory",
           "exists", "folders", "latest", "save", "load", "save_model", "sha256",
           "read_index", "remove_stale_temporaries", "verify_run", "PARTIAL", "save_partial",
           "partial", "remove_partial", "is_sharded", "gathered"]

CHECKPOINTS = "checkpoints"
LATEST = "latest.json"
PARTIAL = "partial.json"
PARTIAL_FILE = "partial.keras"
MAX_INDEX_BYTES = 1024 * 1024
_FILE = re.compile(r"epoch-(\d{4,})\.keras")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# bwkeras.atomic's temporary files: .NAME.RANDOM.tmp[.EXT]
_TEMP = re.compile(r"\..+\.tmp(\.[A-Za-z0-9]+)?")


class CheckpointError(ValueError):
    """A run's checkpoints cannot be used: the message names the files and why."""


class CheckpointWarning(UserWarning):
    """A damaged checkpoint or index was passed over; the message says which and what
    is used instead."""


def directory(run_dir, tag=None):
    """Where the checkpoints of model `tag` (or the run's one model) live."""
    return os.path.join(run_dir, CHECKPOINTS, *([tag] if tag else []))


def _epoch_files(folder):
    """{epoch: file name} of the checkpoint files in `folder`."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    out = {}
    for name in names:
        match = _FILE.fullmatch(name)
        if match and os.path.isfile(os.path.join(folder, name)):
            out[int(match.group(1))] = name
    return out


def folders(run_dir):
    """The checkpoint folders of a run (one per model tag) that hold an index or a
    checkpoint file, sorted."""
    out = []
    for root, _dirs, files in os.walk(directory(run_dir)):
        if LATEST in files or PARTIAL in files or any(_FILE.fullmatch(n) for n in files):
            out.append(root)
    return sorted(out)


def exists(run_dir):
    """True when any model of the run (tagged or not) has an index or a checkpoint file:
    such a run is continued (or refused when damaged), never restarted."""
    return bool(folders(run_dir))


def sha256(path):
    """The SHA-256 of the file `path`, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry(item, where):
    """A checked index entry {"epoch", "file", "sha256" (or None)}; ValueError otherwise."""
    if not isinstance(item, dict):
        raise ValueError(f"{where} is not an object")
    epoch, name, digest = item.get("epoch"), item.get("file"), item.get("sha256")
    if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 1:
        raise ValueError(f"{where} has epoch {str(epoch)[:40]!r}, not a positive integer")
    match = _FILE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        raise ValueError(f"{where} names {str(name)[:80]!r}, which is not a checkpoint file "
                         "of this folder (epoch-NNNN.keras)")
    if int(match.group(1)) != epoch:
        raise ValueError(f"{where} gives epoch {epoch} for the file {name}")
    if digest is not None and not (isinstance(digest, str) and _SHA256.fullmatch(digest)):
        raise ValueError(f"{where} has a sha256 that is not 64 hex digits")
    entry = {"epoch": epoch, "file": name, "sha256": digest}
    ranks = item.get("ranks")  # the world that wrote it; indexes before it have none
    if isinstance(ranks, int) and not isinstance(ranks, bool) and ranks >= 1:
        entry["ranks"] = ranks
    if _is_rate(item.get("learning_rate")):
        entry["learning_rate"] = float(item["learning_rate"])
    return entry


def _is_rate(value):
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


def learning_rate(model):
    """The compiled model's constant learning rate as a float, or None (no optimizer, a
    schedule). Checkpoints record it in the index because Keras 2 does not keep it in the
    .keras file (Keras 3 does, as an optimizer variable)."""
    lr = getattr(getattr(model, "optimizer", None), "learning_rate", None)
    return float(np.asarray(lr)) if hasattr(lr, "assign") else None


def _recorded_rate(model):
    lr = learning_rate(model)
    return lr if _is_rate(lr) else None


def read_index(folder):
    """The entries of FOLDER/latest.json, newest first: None when there is no index;
    ValueError naming the problem when it cannot be used (unreadable, not JSON, a name
    outside the folder, an epoch that disagrees with its file)."""
    path = os.path.join(folder, LATEST)
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_INDEX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ValueError(f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_INDEX_BYTES:
        raise ValueError(f"it is larger than {MAX_INDEX_BYTES // 1024} KiB")
    try:
        state = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"it is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(state, dict):
        raise ValueError("it is not a JSON object")
    top = _entry(state, "its newest entry")
    listed = state.get("checkpoints", [])
    if not isinstance(listed, list):
        raise ValueError("its checkpoints list is not a list")
    entries = {e["epoch"]: e for e in (_entry(item, f"checkpoints[{i}]")
                                       for i, item in enumerate(listed))}
    if entries.get(top["epoch"], top)["file"] != top["file"] or any(
            e > top["epoch"] for e in entries):
        raise ValueError("its newest entry is not the newest of its checkpoints list")
    if top["sha256"] is not None and entries.get(top["epoch"], top)["sha256"] not in (
            None, top["sha256"]):
        raise ValueError("it records two checksums for its newest checkpoint")
    entries.setdefault(top["epoch"], top)
    return [entries[e] for e in sorted(entries, reverse=True)]


def _confined(folder, name):
    """FOLDER/NAME, refusing a link that leads out of the folder."""
    path = os.path.join(folder, name)
    real, home = os.path.realpath(path), os.path.realpath(folder)
    if os.path.commonpath([real, home]) != home:
        raise ValueError(f"{name} is a link to {real}, outside the run folder")
    return path


def _intact(path, digest):
    """None when the file at `path` is whole (its SHA-256 is `digest`; without one, every
    member of the zip archive passes its CRC check), else why not."""
    if not os.path.isfile(path):
        return "it does not exist"
    if digest is not None:
        try:
            actual = sha256(path)
        except OSError as exc:
            return f"it cannot be read ({exc.strerror or exc})"
        return None if actual == digest else "its SHA-256 differs from the one recorded " \
                                              "when it was written"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except Exception as exc:  # noqa: BLE001 - any failure to read the archive means damaged
        return f"it is not a whole .keras archive ({type(exc).__name__}: {str(exc)[:80]})"
    return None if bad is None else f"its member {bad} fails its CRC check"


def latest(run_dir, tag=None):
    """(epoch, path) of the newest intact checkpoint of model `tag`, or None when the
    model has none (no index, no checkpoint file).

    A damaged index is rebuilt from the checkpoint files, a damaged checkpoint passed
    over for the next older intact one, each with a `CheckpointWarning` naming what was
    wrong; `CheckpointError` when files exist but none is intact."""
    folder = directory(run_dir, tag)
    state_file = os.path.join(folder, LATEST)
    files = _epoch_files(folder)
    problems = []
    try:
        index = read_index(folder)
    except ValueError as exc:
        index = None
        problems.append(f"{state_file} cannot be used: {exc}")
    if index is None and not problems and not files:
        return None
    if index is not None:
        candidates = list(index)
        newest = index[0]["epoch"]
        listed = {e["epoch"] for e in index}
        # files the index no longer lists but that are still there (older only: a newer
        # file was never published)
        candidates += [{"epoch": e, "file": files[e], "sha256": None}
                       for e in sorted(files, reverse=True) if e < newest and e not in listed]
    else:
        if not problems:
            problems.append(f"{state_file} is missing")
        candidates = [{"epoch": e, "file": files[e], "sha256": None}
                      for e in sorted(files, reverse=True)]
    for entry in candidates:
        try:
            path = _confined(folder, entry["file"])
        except ValueError as exc:
            problems.append(str(exc))
            continue
        why = _intact(path, entry["sha256"])
        if why is None:
            if problems:
                warnings.warn(f"{'; '.join(problems)}; resuming from {path} "
                              f"(epoch {entry['epoch']}), the newest intact checkpoint",
                              CheckpointWarning, stacklevel=2)
            return entry["epoch"], path
        problems.append(f"checkpoint {path} is damaged: {why}")
    raise CheckpointError(
        f"no intact checkpoint in {folder}: {'; '.join(problems) or 'no checkpoint file'}. "
        "The run cannot continue from it; start a new run (or restore the files from a copy)")


def verify_run(run_dir):
    """{tag: (epoch, path)} of the newest intact checkpoint of each model of the run (tag
    None for a run's one model), without warnings; CheckpointError when a model that has
    checkpoint files has no intact one."""
    out = {}
    top = directory(run_dir)
    for folder in folders(run_dir):
        rel = os.path.relpath(folder, top)
        tag = None if rel == "." else rel
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CheckpointWarning)
            out[tag] = latest(run_dir, tag)
    return out


def is_sharded(model):
    """True for a model split over the ranks of a model group (``model_parallel`` > 1,
    `bwkeras.parallel.ShardedModel`): writing it is a collective of every rank."""
    return getattr(model, "model_parallel", 1) > 1 and hasattr(model, "gather_whole")


def gathered(model):
    """What to write for `model`: the model itself, or for a sharded one the whole model
    gathered from its shards (`ShardedModel.gather_whole`: a collective, so call it on
    every rank; the chief gets the model to write, every other rank None)."""
    return model.gather_whole() if is_sharded(model) else model


def save_model(model, path):
    """``model.save(path)`` (a .keras file: architecture, weights, optimizer), atomically."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"model files are saved in the .keras format; got path {path!r}")
    with atomic.atomic_path(path) as tmp:
        os.unlink(tmp)  # Keras 2 refuses to overwrite without asking; let it create the file
        model.save(tmp)
    return path


def save(model, folder, epoch, keep=2, ranks=None):
    """Checkpoint `model` as FOLDER/epoch-NNNN.keras (`epoch` counted from 1), point
    latest.json at it with its SHA-256, and keep the newest `keep` checkpoints (by epoch
    number). `ranks`: the number of ranks that trained it, recorded so that a run resumed
    on another number can re-scale its learning rate (`saved_ranks`). Returns the path."""
    os.makedirs(folder, exist_ok=True)
    name = f"epoch-{epoch:04d}.keras"
    path = save_model(model, os.path.join(folder, name))
    digest = sha256(path)
    try:
        known = {e["file"]: e for e in read_index(folder) or ()}
    except ValueError:
        known = {}
    newest = {"epoch": epoch, "file": name, "sha256": digest}
    if ranks is not None:
        newest["ranks"] = integer("ranks", ranks, minimum=1)
    lr = _recorded_rate(model)
    if lr is not None:
        newest["learning_rate"] = lr
    files = _epoch_files(folder)
    files[epoch] = name
    kept = [e for e in sorted(files) if e <= epoch][-keep:]
    entries = [newest if e == epoch else
               dict(known.get(files[e], {}), epoch=e, file=files[e],
                    sha256=known.get(files[e], {}).get("sha256")) for e in kept]
    atomic.write_json(os.path.join(folder, LATEST), dict(newest, checkpoints=entries))
    # a whole epoch is newer than any state from the middle of an earlier one
    remove_partial(folder, before=epoch)
    for e, old in files.items():
        if e not in kept:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(folder, old))
    return path


def save_partial(model, folder, epoch, step, ranks=None):
    """Checkpoint `model` stopped after `step` steps of the epoch that follows `epoch`
    finished epochs: FOLDER/partial.keras, then partial.json naming it with its SHA-256
    (and `ranks`, as `save` does). Returns the file's path."""
    for name, value in (("epoch", epoch), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"partial checkpoint {name} must be an integer >= 0, got {value!r}")
    if step == 0:
        raise ValueError("a partial checkpoint needs step >= 1; at step 0 the epoch "
                         "checkpoint is the state")
    os.makedirs(folder, exist_ok=True)
    path = save_model(model, os.path.join(folder, PARTIAL_FILE))
    state = {"epoch": epoch, "step": step, "file": PARTIAL_FILE, "sha256": sha256(path)}
    if ranks is not None:
        state["ranks"] = integer("ranks", ranks, minimum=1)
    lr = _recorded_rate(model)
    if lr is not None:
        state["learning_rate"] = lr
    atomic.write_json(os.path.join(folder, PARTIAL), state)
    return path


def _saved_entry(path):
    """What the index (latest.json, or partial.json for partial.keras) records of
    checkpoint `path`; {} when it cannot be read."""
    folder, name = os.path.split(os.fspath(path))
    if name == PARTIAL_FILE:
        try:
            with open(os.path.join(folder, PARTIAL), "rb") as fh:
                state = json.loads(fh.read(MAX_INDEX_BYTES).decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}
    try:
        entries = read_index(folder) or ()
    except ValueError:
        return {}
    return next((e for e in entries if e["file"] == name), {})


def saved_ranks(path):
    """The number of ranks that wrote checkpoint `path` (from its folder's latest.json or
    partial.json), or None when the index does not say (written before it recorded it)."""
    ranks = _saved_entry(path).get("ranks")
    return ranks if isinstance(ranks, int) and not isinstance(ranks, bool) and ranks >= 1 else None


def saved_learning_rate(path):
    """The optimizer's constant learning rate when checkpoint `path` was written, or None
    (a schedule, or an index from before it recorded one)."""
    lr = _saved_entry(path).get("learning_rate")
    return float(lr) if _is_rate(lr) else None


def partial(run_dir, tag=None):
    """(epoch, step, path) of model `tag`'s intact mid-epoch checkpoint, or None when it
    has none. A damaged one is named in a `CheckpointWarning` and passed over (the epoch
    checkpoints are the state then), as is one older than the newest epoch checkpoint."""
    folder = directory(run_dir, tag)
    index = os.path.join(folder, PARTIAL)
    try:
        with open(index, "rb") as fh:
            state = json.loads(fh.read(MAX_INDEX_BYTES).decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        warnings.warn(f"{index} cannot be used ({str(exc)[:80]}); resuming from the epoch "
                      "checkpoints", CheckpointWarning, stacklevel=2)
        return None
    epoch = state.get("epoch") if isinstance(state, dict) else None
    step = state.get("step") if isinstance(state, dict) else None
    ok = all(isinstance(v, int) and not isinstance(v, bool) for v in (epoch, step)) \
        and epoch >= 0 and step >= 1 and state.get("file") == PARTIAL_FILE
    why = None if ok else "its epoch, step or file is not what save_partial writes"
    path = os.path.join(folder, PARTIAL_FILE)
    if why is None:
        why = _intact(path, state.get("sha256"))
    if why is not None:
        warnings.warn(f"{index} cannot be used: {why}; resuming from the epoch checkpoints",
                      CheckpointWarning, stacklevel=2)
        return None
    try:
        newest = (read_index(folder) or [{"epoch": 0}])[0]["epoch"]
    except ValueError:
        newest = max(_epoch_files(folder), default=0)
    if epoch < newest:
        return None
    return epoch, step, path


def remove_partial(folder, before=None):
    """Remove FOLDER's mid-epoch checkpoint (only one from before epoch `before`, if given)."""
    if before is not None:
        try:
            with open(os.path.join(folder, PARTIAL), "rb") as fh:
                epoch = json.loads(fh.read(MAX_INDEX_BYTES).decode("utf-8")).get("epoch")
        except FileNotFoundError:
            return
        except (OSError, UnicodeDecodeError, ValueError, AttributeError):
            epoch = None
        if isinstance(epoch, int) and epoch >= before:
            return
    for name in (PARTIAL, PARTIAL_FILE):  # the index first: never one naming a missing file
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))


def load(model, path):
    """Weights and optimizer state from the .keras file `path` into the compiled `model`;
    CheckpointError naming the file when it cannot be read into this model."""
    from ._keras import build_optimizer

    build_optimizer(model)  # slots must exist to receive the saved state
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"cannot load checkpoint {path} into this model: "
                              f"{type(exc).__name__}: {str(exc)[:300]}") from None
    return model


def remove_stale_temporaries(run_dir):
    """Remove the temporary files an interrupted write left in the run folder and its
    checkpoint folders (bwkeras.atomic's ``.NAME.RANDOM.tmp[.EXT]``); returns their paths."""
    removed = []
    tops = [run_dir] + [root for root, _d, _f in os.walk(directory(run_dir))]
    for top in tops:
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for name in names:
            path = os.path.join(top, name)
            if _TEMP.fullmatch(name) and os.path.isfile(path) and not os.path.islink(path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
    return removed
