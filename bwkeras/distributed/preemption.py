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

With `every_steps` = k the ranks also agree every k steps inside an epoch, so training
ends within k steps of the request instead of at the epoch end (an epoch may outlast the
scheduler's warning). The position reached is `stopped_epoch` / `stopped_step`, and
`stopped_mid_epoch(model)` tells the epoch-end callbacks that run after the break that
this epoch is not complete: `bwkeras.training.fit` then writes the mid-epoch checkpoint
itself. The check costs one scalar allreduce per k steps.
"""
import os
import signal

import keras

from . import runtime

from ..exit_codes import EXIT_PREEMPTED  # noqa: F401  (re-exported by bwkeras.distributed)
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


_MID_EPOCH = "_bwkeras_stopped_mid_epoch"


def stopped_mid_epoch(model):
    """True while `model`'s training was stopped inside an epoch by a `StopOnSignal` with
    `every_steps`: its epoch-end callbacks see an incomplete epoch."""
    return bool(getattr(model, _MID_EPOCH, False))


class StopOnSignal(keras.callbacks.Callback):
    """Stop training on SIGTERM / SIGUSR1 or the stop file: at the end of the current
    epoch, or with `every_steps` = k within k steps."""

    def __init__(self, signals=SIGNALS, stop_file=None, exit_code=None, every_steps=None):
        """exit_code: when set, end the program with it once training stopped early (after
        the other callbacks' on_train_end), so a batch script can tell preemption apart.
        every_steps: also agree every this many steps of an epoch (None or 0: at epoch
        ends only)."""
        super().__init__()
        if every_steps is not None and (isinstance(every_steps, bool) or not isinstance(every_steps, int)
                                        or every_steps < 0):
            raise ValueError(f"every_steps must be an integer >= 0 or None, got {every_steps!r}")
        self.exit_code = exit_code
        self.every_steps = every_steps or None
        self.signals = tuple(signals)
        self.stop_file = stop_file or os.environ.get("BWKERAS_STOP_FILE")
        self.received = None       # the signal number, once one arrived on this rank
        self.preempted = False     # True once all ranks agreed to stop
        self.stopped_epoch = None
        self.stopped_step = None   # steps done in stopped_epoch when stopped inside it
        # Steps of the epoch done before this fit (a run resumed in the middle of an
        # epoch trains its rest); set by the caller, like `hold`.
        self.step_offset = 0
        # hold: the caller installed the handlers (`install`) around several fits and
        # restores them itself, so no signal falls between two fits unhandled.
        self.hold = False
        self._previous = {}

    def _handler(self, signum, frame):
        self.received = signum

    def install(self):
        """Catch the signals from now on (until `restore`)."""
        if not self._previous:
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self):
        """Give the signals back to the handlers they had before `install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()

    def _asked(self):
        return self.received is not None or bool(self.stop_file and os.path.exists(self.stop_file))

    def on_train_begin(self, logs=None):
        setattr(self.model, _MID_EPOCH, False)
        self.install()

    def _agreed(self, name):
        """True on every rank when any rank was asked to stop (one max-allreduce, `name`);
        then training stops after this step."""
        flag = runtime.allreduce(1.0 if self._asked() else 0.0, op="max", name=name)
        if float(flag) > 0:
            self.preempted = True
            self.model.stop_training = True
        return self.preempted

    def on_train_batch_end(self, batch, logs=None):
        k = self.every_steps
        if not k or self.preempted:
            return
        done = self.step_offset + batch + 1
        steps = (self.params or {}).get("steps")
        # The last step of an epoch is checked at its end (a whole epoch, no partial state).
        if done % k or (steps is not None and batch + 1 >= steps):
            return
        if self._agreed(f"preempt.step.{done}"):
            self.stopped_step = done
            setattr(self.model, _MID_EPOCH, True)

    def on_epoch_end(self, epoch, logs=None):
        if self.preempted:  # stopped inside this epoch: every rank knows, none asks again
            self.stopped_epoch = epoch
            if runtime.is_chief():
                print(f"\nbwkeras: stop signal received; stopping after step {self.stopped_step} "
                      f"of epoch {epoch + 1}", flush=True)
            return
        if self._agreed(f"preempt.{epoch}"):
            self.stopped_epoch = epoch
            if runtime.is_chief():
                print(f"\nbwkeras: stop signal received; stopping after epoch {epoch + 1}", flush=True)

    def on_train_end(self, logs=None):
        if not self.hold:
            self.restore()
        if self.preempted and self.exit_code is not None:
            raise SystemExit(self.exit_code)
