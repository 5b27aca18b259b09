"""Stop cleanly when the scheduler warns that the job is about to end.

Slurm (`--signal`), PBS and `kill` send SIGTERM or SIGUSR1 some time before the limit,
to the ranks directly or to the batch script, which then creates $BWKERAS_STOP_FILE
(rendered scripts do so: the file works for every launcher). `StopOnSignal` notes either,
and at the end of the current epoch every rank agrees
(one allreduce of a flag, so all ranks stop at the SAME epoch: a rank that stopped alone
would leave the others waiting in their allreduce). The epoch's checkpoint is written by
the checkpoint callback as usual, and the program exits with EXIT_PREEMPTED so the batch
script can requeue the job, which then resumes from that checkpoint. Stopping at an
epoch boundary makes the resumed run follow exactly the path of an uninterrupted one.
"""
import os
import signal

import keras

from . import runtime

from ..exit_codes import EXIT_PREEMPTED  # noqa: F401  (re-exported by bwkeras.distributed)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopOnSignal(keras.callbacks.Callback):
    """Finish the current epoch, then stop training, on SIGTERM / SIGUSR1 or the stop file."""

    def __init__(self, signals=SIGNALS, stop_file=None, exit_code=None):
        """exit_code: when set, end the program with it once training stopped early (after
        the other callbacks' on_train_end), so a batch script can tell preemption apart."""
        super().__init__()
        self.exit_code = exit_code
        self.signals = tuple(signals)
        self.stop_file = stop_file or os.environ.get("BWKERAS_STOP_FILE")
        self.received = None       # the signal number, once one arrived on this rank
        self.preempted = False     # True once all ranks agreed to stop
        self._previous = {}

    def _handler(self, signum, frame):
        self.received = signum

    def on_train_begin(self, logs=None):
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handler)

    def on_epoch_end(self, epoch, logs=None):
        asked = self.received is not None or bool(self.stop_file and os.path.exists(self.stop_file))
        flag = runtime.allreduce(1.0 if asked else 0.0, op="max",
                                 name=f"preempt.{epoch}")
        if float(flag) > 0:
            self.preempted = True
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if runtime.is_chief():
                print(f"\nbwkeras: stop signal received; stopping after epoch {epoch + 1}", flush=True)

    def on_train_end(self, logs=None):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self.preempted and self.exit_code is not None:
            raise SystemExit(self.exit_code)
