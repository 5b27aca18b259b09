"""Batch submission: render Slurm (sbatch) and PBS/aprun scripts from one JobSpec.

One description of the job, rendered for its scheduler, written and submitted:

    spec = JobSpec(command=["python", "recipes/sunspots.py"], nodes=2, tasks_per_node=4,
                   time="01:00:00", launcher="srun", account="abc")
    path = write_script(spec, "runs/sunspots-job")
    job_id = submit(spec, path)
"""
from .render import render, render_pbs, render_slurm
from .spec import DEFAULT_LAUNCHER, EXIT_PREEMPTED, LAUNCHERS, SCHEDULERS, JobSpec, parse_time
from .submit import SUBMIT_COMMANDS, submit, write_script

__all__ = ["JobSpec", "render", "render_slurm", "render_pbs", "write_script", "submit",
           "parse_time", "SCHEDULERS", "LAUNCHERS", "DEFAULT_LAUNCHER", "EXIT_PREEMPTED",
           "SUBMIT_COMMANDS"]
