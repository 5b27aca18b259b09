"""A real single-node Slurm (munge, slurmctld, slurmd from Debian's packages) for tests.

Started once per test session and stopped by PID at the end. No systemd here: munged is
started as the munge user after creating /run/munge; slurmctld and slurmd take the
rendered config with -f. Jobs are polled with `scontrol show job` (`sbatch --wait` backs
off to ~40 s between polls).
"""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol")


def missing_tools():
    return [t for t in NEEDED if shutil.which(t) is None and not Path(f"/usr/sbin/{t}").exists()]


def _sbin(name):
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_munge():
    probe = subprocess.run("munge -n | unmunge", shell=True, capture_output=True)
    if probe.returncode == 0:
        return None  # a munged is already serving
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    munge = pwd.getpwnam("munge")
    for path in (run_dir, Path("/var/lib/munge"), Path("/var/log/munge"), Path("/etc/munge")):
        if path.exists():
            os.chown(path, munge.pw_uid, munge.pw_gid)
    subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged"), "--force"], check=True, timeout=30)
    for _ in range(50):
        if subprocess.run("munge -n | unmunge", shell=True, capture_output=True).returncode == 0:
            pid_file = Path("/run/munge/munged.pid")
            return int(pid_file.read_text()) if pid_file.exists() else None
        time.sleep(0.1)
    raise RuntimeError("munged did not start")


class SlurmCluster:
    def __init__(self, workdir):
        self.dir = Path(workdir)
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.dir / "slurm.conf"
        self.pids = []

    @property
    def env(self):
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def start(self):
        for sub in ("state", "spool"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        text = (HERE / "slurm" / "slurm.conf.in").read_text()
        for key, value in {"@HOST@": self.host, "@DIR@": str(self.dir), "@CPUS@": str(os.cpu_count()),
                           "@CTLD_PORT@": str(_free_port()), "@D_PORT@": str(_free_port())}.items():
            text = text.replace(key, value)
        self.conf.write_text(text)
        munge_pid = _start_munge()
        if munge_pid:
            self.pids.append(munge_pid)
        subprocess.run([_sbin("slurmctld"), "-f", str(self.conf)], check=True, timeout=30)
        subprocess.run([_sbin("slurmd"), "-f", str(self.conf)], check=True, timeout=30)
        for name in ("slurmctld", "slurmd"):
            pid_file = self.dir / f"{name}.pid"
            for _ in range(100):
                if pid_file.exists() and pid_file.read_text().strip():
                    break
                time.sleep(0.1)
            self.pids.append(int(pid_file.read_text()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=self.env)
            if out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated"):
                return self
            time.sleep(0.3)
        raise RuntimeError(f"Slurm node never became idle:\n{self.log()}")

    def log(self):
        parts = []
        for name in ("slurmctld.log", "slurmd.log"):
            path = self.dir / name
            if path.exists():
                parts.append(f"--- {name}\n" + "\n".join(path.read_text().splitlines()[-30:]))
        return "\n".join(parts)

    def stop(self):
        # slurmd, slurmctld, and munged only when this cluster started it.
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def job(self, job_id):
        """`scontrol show job` as a dict of its key=value fields."""
        out = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True,
                             text=True, env=self.env, timeout=30)
        fields = {}
        for line in out.stdout.splitlines():
            line = line.strip()
            if line.startswith("JobId=") and " JobName=" in line:
                # The job name may hold spaces: it runs to the end of its line.
                head, _, name = line.partition(" JobName=")
                fields["JobName"] = name
                line = head
            for token in line.split():
                key, sep, value = token.partition("=")
                if sep:
                    fields[key] = value
        return fields

    def start_requeued_now(self, job_id, timeout=120):
        """Wait until `job_id` has been requeued, then make it eligible at once.

        Slurm holds a requeued batch job back for about two minutes (EligibleTime = requeue
        time + 121 s, Reason=BeginTime); a cluster just waits, a test need not.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if int(info.get("Restarts", 0)) >= 1 and info.get("JobState") == "PENDING":
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                               env=self.env, check=True, timeout=30)
                return info
            if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"):
                return info
            time.sleep(0.2)
        pytest.fail(f"job {job_id} was not requeued within {timeout} s: {self.job(job_id)}\n{self.log()}")

    def wait(self, job_id, timeout=240, states=("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT",
                                                 "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED")):
        deadline = time.monotonic() + timeout
        info = {}
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info.get("JobState") in states:
                return info
            time.sleep(0.5)
        subprocess.run(["scancel", str(job_id)], env=self.env)
        pytest.fail(f"job {job_id} not finished in {timeout} s: {info}\n{self.log()}")
