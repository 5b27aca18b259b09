"""Exit statuses that bwkeras programs and batch scripts agree on."""

# A training run stopped on a scheduler's warning signal after writing its checkpoint:
# batch scripts requeue the job instead of failing it, and the requeued job resumes.
EXIT_PREEMPTED = 85

# A rank ended the job because no training step finished for BWKERAS_STALL_SECONDS: a rank
# or the network it waits on stopped answering (bwkeras.distributed.watchdog).
EXIT_STALLED = 86
