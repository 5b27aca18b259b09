"""Exit statuses that bwkeras programs and batch scripts agree on."""

# A training run stopped on a scheduler's warning signal after writing its checkpoint:
# batch scripts requeue the job instead of failing it, and the requeued job resumes.
EXIT_PREEMPTED = 85
