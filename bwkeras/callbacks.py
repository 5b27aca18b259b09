"""The Keras callbacks that write a run's training record: history CSV, checkpoints, and
a training clock. `bwkeras.training.callbacks` puts them in their place in the list.
"""
import csv
import math
import os
import time

import keras
import numpy as np

from . import atomic, checkpoints
from ._checks import integer

__all__ = ["HistoryCSV", "Checkpoint", "TrainingClock", "ParameterPath"]


def _cut_short(model):
    """True when a stop request ended `model`'s training inside the current epoch."""
    from .distributed.preemption import stopped_mid_epoch

    return model is not None and stopped_mid_epoch(model)


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
        # an epoch a stop request cut short is no row: its resumed rest writes it
        if not self.enabled or _cut_short(self.model):
            return
        row = {"epoch": epoch + 1}
        row.update({k: float(v) for k, v in (logs or {}).items() if np.ndim(v) == 0})
        self.rows = [r for r in self.rows if int(r["epoch"]) < epoch + 1] + [row]
        atomic.write_csv(self.path, self.rows)


class Checkpoint(keras.callbacks.Callback):
    """Each epoch: model + optimizer as checkpoints/epoch-NNNN.keras, then latest.json.

    An epoch with a non-finite loss writes nothing, so the last good checkpoint stays the
    one `--resume` uses. The newest `keep` checkpoints are kept. `ranks`: the number of
    ranks training, recorded with each checkpoint (`checkpoints.save`).

    A sharded model (``model_parallel`` > 1) is gathered on every rank, whatever
    `enabled` says there (the gather is a collective), and written whole by the chief
    where its callback is enabled; every rank raises if that write failed.
    """

    def __init__(self, directory, keep=2, enabled=True, ranks=None):
        super().__init__()
        self.directory = directory
        self.keep = integer("keep", keep, minimum=1)
        self.enabled = enabled
        self.ranks = ranks
        self.skipped = []

    def on_epoch_end(self, epoch, logs=None):
        # an epoch a stop request cut short is not complete: training.fit writes its
        # mid-epoch checkpoint (checkpoints.save_partial) instead
        # (the same on every rank: the stop is agreed and the loss averaged over ranks)
        if _cut_short(self.model) or not (self.enabled or checkpoints.is_sharded(self.model)):
            return
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.skipped.append(epoch + 1)
            if self.enabled:
                print(f"\nEpoch {epoch + 1}: loss is {float(loss)}; checkpoint not written, "
                      "the last good one is kept.")
            return
        if checkpoints.is_sharded(self.model):
            self._save_sharded(epoch)
            return
        checkpoints.save(self.model, self.directory, epoch + 1, keep=self.keep, ranks=self.ranks)

    def _save_sharded(self, epoch):
        from .distributed import runtime

        error = None
        try:
            whole = checkpoints.gathered(self.model)  # every rank: a collective
            if self.enabled and whole is not None:
                checkpoints.save(whole, self.directory, epoch + 1, keep=self.keep,
                                 ranks=self.ranks)
        except (ValueError, TypeError, OSError) as exc:
            error = exc
        runtime.agree(error, name=f"bwkeras.checkpoint.{epoch}")


class TrainingClock(keras.callbacks.Callback):
    """Puts `seconds` into every epoch's logs: the time spent training since the start,
    leaving out the epoch's validation and whatever later callbacks do (checkpoints, logs).

    previous: the `seconds` column of a resumed model's history; a run resumed at epoch e
    counts on from its e-th value, so times add up across the interruption.
    """

    def __init__(self, previous=()):
        super().__init__()
        self.previous = list(previous)
        self.seconds = None
        self._epoch_start = self._test_start = None
        self._testing = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        if self.seconds is None:  # the first epoch of this fit: 0, or where a resume left
            self.seconds = float(self.previous[epoch - 1]) if 0 < epoch <= len(self.previous) else 0.0
        self._epoch_start = time.perf_counter()
        self._testing = 0.0

    def on_test_begin(self, logs=None):
        self._test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        if self._test_start is not None:
            self._testing += time.perf_counter() - self._test_start
            self._test_start = None

    def on_epoch_end(self, epoch, logs=None):
        self.seconds += time.perf_counter() - self._epoch_start - self._testing
        if logs is not None:
            logs["seconds"] = self.seconds


class ParameterPath(keras.callbacks.Callback):
    """The path of a regression model through parameter space: `path` holds the values of
    the parameters `names` before training and after every update, one tuple each."""

    def __init__(self, names):
        super().__init__()
        self.names = list(names)
        self.path = []

    def on_train_begin(self, logs=None):
        self.path = [self._point()]

    def on_train_batch_end(self, batch, logs=None):
        self.path.append(self._point())

    def _point(self):
        params = self.model.params
        return tuple(float(params[name]) for name in self.names)
