"""Write a rendered batch script and hand it to the scheduler."""
import os
import re
import shutil
import subprocess

from .. import atomic
from .render import render

SUBMIT_COMMANDS = {"slurm": "sbatch", "pbs": "qsub"}


def write_script(spec, directory, name=None):
    """Render `spec` into `directory` (atomically, executable); returns the path."""
    os.makedirs(directory, exist_ok=True)
    suffix = ".sbatch" if spec.scheduler == "slurm" else ".pbs"
    path = os.path.join(directory, name or f"job{suffix}")
    return atomic.write_text(path, render(spec), mode=0o755)


def submit(spec, script_path):
    """Submit `script_path`; returns the scheduler's job id. RuntimeError with the
    scheduler's own message on failure, FileNotFoundError when its command is missing."""
    command = SUBMIT_COMMANDS[spec.scheduler]
    exe = shutil.which(command)
    if exe is None:
        raise FileNotFoundError(f"{command} is not on PATH: cannot submit to {spec.scheduler} "
                                f"(use --dry-run to only write the script)")
    argv = [exe, "--parsable", script_path] if command == "sbatch" else [exe, script_path]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{command} refused the job (exit {proc.returncode}): {proc.stderr.strip()}")
    out = proc.stdout.strip()
    # sbatch --parsable prints "jobid[;cluster]"; qsub prints "1234.server".
    match = re.match(r"^(\d+)", out.split(";")[0]) if command == "sbatch" else re.match(r"^(\S+)", out)
    if not match:
        raise RuntimeError(f"{command} printed no job id: {out!r}")
    return match.group(1)
