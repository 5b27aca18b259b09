"""One description of a batch job, validated once, from which every script is rendered."""
import dataclasses
import re
import typing

from .._checks import integer
from ..exit_codes import EXIT_PREEMPTED  # noqa: F401  (re-exported for the renderers)

SCHEDULERS = ("slurm", "pbs")
LAUNCHERS = {"slurm": ("srun", "srun-gloo", "horovodrun", "mpirun"), "pbs": ("aprun", "mpirun")}
DEFAULT_LAUNCHER = {"slurm": "srun", "pbs": "aprun"}
# The MPI launches the batch script can retry on fewer nodes (min_nodes).
RETRY_LAUNCHERS = {"slurm": ("srun",), "pbs": ("aprun", "mpirun")}

_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,3}):([0-5]\d):([0-5]\d)$")


def parse_time(text):
    """'HH:MM:SS' or 'D-HH:MM:SS' -> seconds; ValueError naming the text otherwise."""
    match = _TIME.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"time limit {text!r} is not HH:MM:SS (or D-HH:MM:SS)")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise ValueError(f"time limit {text!r} must be longer than zero")
    return total


def _plain_text(name, value):
    # Values reach '#SBATCH' / '#PBS' lines, which the scheduler reads, and the script body,
    # where they are shell-quoted. A line break would start a new directive or command.
    if value is None:
        return None
    if not isinstance(value, str) or not value or any(c in value for c in "\n\r\0"):
        raise ValueError(f"{name} must be a one-line, non-empty string, got {value!r}")
    return value


@dataclasses.dataclass
class JobSpec:
    """What to run (`command`, the argv of ONE rank) and where (resources, scheduler)."""

    command: typing.List[str]
    scheduler: str = "slurm"
    nodes: int = 1
    tasks_per_node: int = 1
    time: str = "00:30:00"
    job_name: str = "bwkeras"
    account: typing.Optional[str] = None
    partition: typing.Optional[str] = None      # Slurm partition, or PBS queue
    launcher: typing.Optional[str] = None       # default: srun (slurm) / aprun (pbs)
    cpus_per_task: int = 1
    workdir: str = "."
    output: str = "job-%j.out"
    requeue: bool = False
    signal_seconds: int = 120                   # warning signal this long before the limit
    # Retry on fewer nodes: a launch that failed because a node did is started again from
    # the last checkpoint on the nodes that still answer, down to this many (None: no retry).
    min_nodes: typing.Optional[int] = None
    # Elastic (Gloo, horovodrun --min-np): a lost node leaves the others training from the
    # last commit, down to min_nodes (default 1), with no relaunch.
    elastic: bool = False
    # Model parallelism: the ranks form groups of this many that hold one model between
    # them (the command must ask for it too: `bwkeras submit --model-parallel` passes
    # --set model.model_parallel=K to the recipe). It must divide the number of tasks.
    model_parallel: typing.Optional[int] = None
    env: typing.Dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {self.scheduler!r}; expected one of {SCHEDULERS}")
        if self.elastic and self.scheduler != "slurm":
            raise ValueError(f"elastic jobs run under Slurm (horovodrun inside the allocation), "
                             f"not {self.scheduler}; on PBS, min_nodes retries on fewer nodes")
        if self.launcher is None:
            self.launcher = "horovodrun" if self.elastic else DEFAULT_LAUNCHER[self.scheduler]
        if self.elastic and self.launcher != "horovodrun":
            raise ValueError(f"elastic jobs are launched by horovodrun (Gloo), not {self.launcher!r}")
        if self.launcher not in LAUNCHERS[self.scheduler]:
            raise ValueError(f"unknown launcher {self.launcher!r} for {self.scheduler}; "
                             f"expected one of {LAUNCHERS[self.scheduler]}")
        for name in ("nodes", "tasks_per_node", "cpus_per_task"):
            integer(name, getattr(self, name), minimum=1)
        self.time_seconds = parse_time(self.time)
        integer("signal_seconds", self.signal_seconds, 0, self.time_seconds - 1,
                expected="an integer in [0, time limit)")
        if self.min_nodes is not None:
            integer("min_nodes", self.min_nodes, 1, self.nodes, expected=f"an integer in [1, {self.nodes}] (nodes)")
            if not self.elastic and self.launcher not in RETRY_LAUNCHERS[self.scheduler]:
                raise ValueError(f"min_nodes retries {' and '.join(RETRY_LAUNCHERS[self.scheduler])} "
                                 f"launches on {self.scheduler}, not {self.launcher}; a Gloo job "
                                 "survives a lost node elastically instead (elastic)")
        if self.model_parallel is not None:
            self._check_model_parallel()
        for name in ("job_name", "account", "partition", "workdir", "output"):
            _plain_text(name, getattr(self, name))
        if not self.command or not all(isinstance(a, str) for a in self.command):
            raise ValueError(f"command must be a non-empty list of strings, got {self.command!r}")
        for arg in self.command:
            _plain_text("command argument", arg)
        for key, value in self.env.items():
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"environment variable name {key!r} is not a valid name")
            _plain_text(f"env[{key}]", value)

    def _check_model_parallel(self):
        k = integer("model_parallel", self.model_parallel, minimum=1)
        if self.ntasks % k:
            raise ValueError(
                f"model_parallel {k} must divide the number of tasks, {self.ntasks} "
                f"(nodes {self.nodes} x tasks_per_node {self.tasks_per_node}): each model "
                f"group is {k} ranks; with {self.ntasks} tasks, model_parallel may be "
                f"{', '.join(str(i) for i in range(1, self.ntasks + 1) if self.ntasks % i == 0)}")
        if k > 1 and self.elastic:
            raise ValueError(f"model_parallel {k} cannot run elastically: the ranks of a model "
                             "group hold one model between them and cannot come and go")
        if k > 1 and self.min_nodes is not None and self.tasks_per_node % k:
            raise ValueError(
                f"model_parallel {k} with min_nodes: a retry on fewer nodes runs "
                f"tasks_per_node {self.tasks_per_node} x the nodes that answer, so "
                f"model_parallel must divide tasks_per_node {self.tasks_per_node}")

    @property
    def ntasks(self):
        return self.nodes * self.tasks_per_node
