"""Per-rank defaults read from the launcher's environment (no launcher needed)."""
import os

import pytest

from bwkeras import _rank_env

LAUNCH_VARS = _rank_env.WORLD_SIZE_VARS + _rank_env.LOCAL_SIZE_VARS + (
    "SLURM_STEP_TASKS_PER_NODE", "SLURM_NODEID", "SLURM_STEP_ID", "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMPI_MCA_mpi_yield_when_idle")


@pytest.fixture
def env(monkeypatch):
    for var in LAUNCH_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_rank_env, "_STATE", {"threads": None})
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    return monkeypatch


def test_lone_process_is_left_alone(env):
    assert _rank_env.apply_rank_defaults() is None
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
    assert "OMPI_MCA_mpi_yield_when_idle" not in os.environ


def test_cores_are_divided_among_local_ranks(env):
    env.setenv("OMPI_COMM_WORLD_SIZE", "8")
    env.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "4")
    assert _rank_env.apply_rank_defaults() == 2
    assert os.environ["TF_NUM_INTRAOP_THREADS"] == os.environ["TF_NUM_INTEROP_THREADS"] == "2"
    assert os.environ["OMPI_MCA_mpi_yield_when_idle"] == "1"
    assert _rank_env.threads_applied() == 2


@pytest.mark.parametrize("per_node, node, expected", [
    ("2(x3),1", "2", 2), ("2(x3),1", "3", 1), ("4,3", "1", 3), ("5", "0", 5), ("2(x2)", "7", None),
])
def test_slurm_tasks_per_node(env, per_node, expected, node):
    env.setenv("SLURM_STEP_TASKS_PER_NODE", per_node)
    env.setenv("SLURM_NODEID", node)
    assert _rank_env.local_size() == expected


def test_binding_and_omp_num_threads_take_precedence(env):
    env.setenv("PMI_SIZE", "4")
    env.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})  # bound to 3 of the 8 cores
    assert _rank_env.thread_share() == 3
    env.setenv("OMP_NUM_THREADS", "5")
    assert _rank_env.thread_share() == 5


def test_unknown_local_size_leaves_tensorflow_alone(env):
    env.setenv("PMI_SIZE", "64")  # no local size, not bound: the share is unknown
    assert _rank_env.apply_rank_defaults() is None
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
    assert os.environ["OMPI_MCA_mpi_yield_when_idle"] == "1"


def test_user_settings_win(env):
    env.setenv("HOROVOD_SIZE", "2")
    env.setenv("HOROVOD_LOCAL_SIZE", "2")
    env.setenv("TF_NUM_INTEROP_THREADS", "7")
    env.setenv("OMPI_MCA_mpi_yield_when_idle", "0")
    assert _rank_env.apply_rank_defaults() is None
    assert "TF_NUM_INTRAOP_THREADS" not in os.environ
    assert os.environ["OMPI_MCA_mpi_yield_when_idle"] == "0"
