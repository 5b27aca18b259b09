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
    """slurmctld and slurmd on this machine, or across the nodes of a cluster in a box.

    nodes: None for this machine alone; else the box's nodes (tests/cluster.py), each with
    `name`, `addr` and `popen(argv)` that runs a command inside the node. The controller
    runs on the first node, one slurmd on every node.
    """

    def __init__(self, workdir, nodes=None, tmpfs="/tmp", slurmd_timeout=300):
        self.dir = Path(workdir)
        self.nodes = nodes
        self.host = nodes[0].name if nodes else socket.gethostname().split(".")[0]
        self.names = [n.name for n in nodes] if nodes else [self.host]
        self.conf = self.dir / "slurm.conf"
        self.tmpfs = tmpfs
        self.slurmd_timeout = slurmd_timeout
        self.pids = []

    @property
    def env(self):
        return dict(os.environ, SLURM_CONF=str(self.conf))

    def _render(self):
        if self.nodes:
            # Every node has its own network namespace, so the default ports never clash.
            ctld_host, ports = f"{self.host}({self.nodes[0].addr})", ("6817", "6818")
            lines = [f"NodeName={n.name} NodeAddr={n.addr} CPUs={os.cpu_count()} RealMemory=4000 "
                     "State=UNKNOWN" for n in self.nodes]
        else:
            ctld_host, ports = self.host, (str(_free_port()), str(_free_port()))
            lines = [f"NodeName={self.host} CPUs={os.cpu_count()} RealMemory=4000 State=UNKNOWN"]
        text = (HERE / "slurm" / "slurm.conf.in").read_text()
        for key, value in {"@CTLD_HOST@": ctld_host, "@DIR@": str(self.dir), "@TMPFS@": self.tmpfs,
                           "@CTLD_PORT@": ports[0], "@D_PORT@": ports[1],
                           "@SLURMD_TIMEOUT@": str(self.slurmd_timeout),
                           "@NODES@": "\n".join(lines), "@NODE_LIST@": ",".join(self.names)}.items():
            text = text.replace(key, value)
        self.conf.write_text(text)

    def _daemon(self, name, node=None):
        """Start slurmctld or slurmd (on `node` of a box) and return its pid."""
        argv = [_sbin(name), "-f", str(self.conf)]
        pid_file = self.dir / ("slurmctld.pid" if name == "slurmctld"
                               else f"slurmd-{node.name if node else self.host}.pid")
        pid_file.unlink(missing_ok=True)
        if node is None:
            subprocess.run(argv, check=True, timeout=30)
        else:
            node.popen(argv).wait(timeout=30)
        for _ in range(100):
            if pid_file.exists() and pid_file.read_text().strip():
                return int(pid_file.read_text())
            time.sleep(0.1)
        raise RuntimeError(f"{name} wrote no pid file {pid_file}:\n{self.log()}")

    def start(self):
        for sub in ["state"] + [f"spool-{name}" for name in self.names]:
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._render()
        munge_pid = _start_munge()
        if munge_pid:
            self.pids.append(munge_pid)
        first = self.nodes[0] if self.nodes else None
        self.pids.append(self._daemon("slurmctld", first))
        for node in self.nodes or [None]:
            self.pids.append(self._daemon("slurmd", node))
        self.wait_states({name: ("idle", "mixed", "allocated") for name in self.names}, timeout=60)
        return self

    def start_slurmd(self, node):
        """(Re)start the slurmd of `node`, e.g. after the node was brought back."""
        pid = self._daemon("slurmd", node)
        self.pids.append(pid)
        return pid

    def node_states(self):
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True,
                             env=self.env, timeout=30)
        return dict(line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)

    def wait_states(self, wanted, timeout=60):
        """Wait until every node named in `wanted` is in one of its states (a state such
        as "down*" counts as "down")."""
        deadline = time.monotonic() + timeout
        states = {}
        while time.monotonic() < deadline:
            states = self.node_states()
            if all(states.get(n, "").rstrip("*~#!%$@^-") in ok for n, ok in wanted.items()):
                return states
            time.sleep(0.3)
        raise RuntimeError(f"Slurm nodes not in {wanted} within {timeout} s: {states}\n{self.log()}")

    def log(self):
        parts = []
        for name in ["slurmctld.log"] + [f"slurmd-{n}.log" for n in self.names]:
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
                # The ended run's step daemons may still be tearing down (srun waits up to
                # 32 s for them); while they live, their PMIx socket (stepd.slurm.pmix.J.0)
                # exists and the new run's step cannot bind it: its launch fails. A real
                # cluster's two-minute wait covers this; here wait until they are gone.
                self._wait_steps_gone(job_id, deadline)
                # slurmd revokes the ended run's credential with a time in whole seconds and
                # refuses a launch of the same job in that second ("Job credential revoked",
                # the job then FAILS): start it two seconds on, as a real cluster's wait does.
                time.sleep(2)
                subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"],
                               env=self.env, check=True, timeout=30)
                return info
            if info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"):
                return info
            time.sleep(0.2)
        pytest.fail(f"job {job_id} was not requeued within {timeout} s: {self.job(job_id)}\n{self.log()}")

    def _wait_steps_gone(self, job_id, deadline):
        """Until no slurmstepd of `job_id` runs (each names its step in its title,
        'slurmstepd: [J.S]')."""
        pattern = rf"^slurmstepd: \[{job_id}\."
        while subprocess.run(["pgrep", "-f", pattern], stdout=subprocess.DEVNULL).returncode == 0:
            if time.monotonic() > deadline:
                pytest.fail(f"the step daemons of job {job_id} did not end:\n{self.log()}")
            time.sleep(0.2)

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
