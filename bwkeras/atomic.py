"""Atomic file writes: a reader or a crash never sees half a file.

Every writer goes through `atomic_path`: the content is written to a temporary file
in the same folder, flushed to disk and renamed into place (``os.replace`` is atomic on
POSIX), then the folder itself is synced so the rename survives a power cut. On an error
the temporary file is removed and the old file, if any, is left as it was.

Keras-free and cheap to import: configs, batch scripts, plots and benchmarks write
through it without starting TensorFlow.
"""
import contextlib
import csv
import io
import json
import math
import os
import tempfile

import numpy as np

__all__ = ["atomic_path", "write_bytes", "write_text", "write_json", "write_yaml",
           "write_csv", "json_safe"]


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
def atomic_path(path, suffix=None, mode=None):
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    The temporary name ends like `path` (``suffix`` defaults to its extension) so writers
    that check extensions (Keras' ``model.save``) accept it. `mode` sets the file's
    permission bits (default: 0o666 less the umask, as ``open`` would give).
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
        # mkstemp creates 0600; give the mode a plain open() would
        os.chmod(tmp, (0o666 & ~_umask()) if mode is None else mode)
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


def write_bytes(path, data, mode=None):
    with atomic_path(path, mode=mode) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def write_text(path, text, mode=None):
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    return write_bytes(path, text.encode("utf-8"), mode=mode)


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot write {type(obj).__name__} {obj!r} as JSON")


def json_safe(obj):
    """`obj` with numpy values as Python ones and NaN / infinities as None: strict JSON has
    no spelling for them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return json_safe(obj.item())
    if isinstance(obj, np.ndarray):
        return json_safe(obj.tolist())
    return obj


def write_json(path, obj):
    text = json.dumps(json_safe(obj), indent=2, default=_json_default, allow_nan=False)
    return write_text(path, text + "\n")


def write_yaml(path, obj):
    import yaml

    return write_text(path, yaml.safe_dump(json_safe(obj), sort_keys=False))


def write_csv(path, rows, fieldnames=None):
    """A list of dicts as CSV (columns: `fieldnames`, else the union in first-seen order)."""
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
    return write_text(path, buf.getvalue())
