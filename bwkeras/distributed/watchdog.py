"""End a job whose ranks stopped making progress, instead of waiting for the time limit.

A rank that is alive but silent (stopped with SIGSTOP, swapped out, a link that went down
without resetting its connections) blocks every other rank inside its next collective,
and nothing in Horovod notices: its stall inspector runs on the same coordination cycle
that is blocked, Open MPI waits for ever and Gloo gives up only inside an operation. So
each rank watches itself from a thread that needs no collective: when no batch (training
or validation) and no epoch has ended for BWKERAS_STALL_SECONDS, it names itself, its host
and the ranks it waits for, and exits with EXIT_STALLED. Every launcher ends the whole
job when one rank exits non-zero; the last checkpoint, written atomically at an epoch end,
is intact for --resume.
"""
import os
import sys
import threading
import time

import keras

from ..exit_codes import EXIT_STALLED
from . import runtime

DEFAULT_SECONDS = 120.0
# The first step traces and compiles the train function: give it this much more.
FIRST_STEP_GRACE = 60.0


def stall_seconds():
    """The limit from $BWKERAS_STALL_SECONDS (default 120 s; 0 turns the watchdog off)."""
    text = os.environ.get("BWKERAS_STALL_SECONDS", "")
    if not text:
        return DEFAULT_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"BWKERAS_STALL_SECONDS={text!r} must be a number of seconds >= 0 "
                         "(0 turns the stall watchdog off)")
    return value


class StallWatchdog(keras.callbacks.Callback):
    """Exit with EXIT_STALLED when training made no progress for `seconds`.

    Progress is the end of any batch (training, validation, prediction) or epoch. The
    thread only reads a timestamp: no collective, so it works when every collective hangs.
    `on_stall(message)`: called instead of exiting (tests); default prints and exits.
    """

    def __init__(self, seconds=None, on_stall=None, poll=1.0):
        super().__init__()
        self.seconds = stall_seconds() if seconds is None else float(seconds)
        self.on_stall = on_stall
        self.poll = poll
        self._last = None
        self._grace = FIRST_STEP_GRACE
        self._stop = threading.Event()
        self._thread = None

    def _progress(self, *args, **kwargs):
        self._last = time.monotonic()
        self._grace = 0.0

    on_train_batch_end = on_test_batch_end = on_predict_batch_end = _progress
    # Keras 3 runs the batch-end hooks of a fit in a thread of its own (after the step's
    # results are ready) unless a callback overrides one without saying it is safe there:
    # then every step waits for the hooks on the training thread. Recording a time is
    # safe from any thread, so the watchdog leaves a fit's dispatch as it would be without it.
    async_safe = True
    on_epoch_begin = on_epoch_end = _progress

    def on_train_begin(self, logs=None):
        if self.seconds <= 0:
            return
        runtime.hosts()  # gathered now, while every rank answers, for the message
        self._last = time.monotonic()
        self._grace = FIRST_STEP_GRACE
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="bwkeras-stall-watchdog", daemon=True)
        self._thread.start()

    def on_train_end(self, logs=None):
        self._stop.set()

    def message(self, idle):
        me, world = runtime.rank(), runtime.size()
        hosts = runtime.hosts()  # cached at train begin: no collective here
        others = ", ".join(f"rank {r} on {hosts[r]}" for r in range(world) if r != me)
        return (f"bwkeras: rank {me} on {hosts[me]} made no training progress for {idle:.0f} s "
                f"(BWKERAS_STALL_SECONDS={self.seconds:g}): a rank it waits for stopped answering "
                f"(one of: {others}; the ranks that do not report this are the lost ones). "
                f"Ending the job with exit status {EXIT_STALLED}; resume from the last checkpoint.")

    def _watch(self):
        while not self._stop.wait(self.poll):
            idle = time.monotonic() - self._last
            if idle > self.seconds + self._grace:
                text = self.message(idle)
                if self.on_stall is not None:
                    self.on_stall(text)
                    return
                print(text, file=sys.stderr, flush=True)
                sys.stdout.flush()
                os._exit(EXIT_STALLED)  # the main thread is blocked in a collective
