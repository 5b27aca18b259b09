"""The interface toward the other hosts, the srun-Gloo rank variables, and the stall
watchdog: the parts that need no second host (tests/test_multinode*.py prove them on two)."""
import socket
import time

import pytest

from bwkeras import _network, _rank_env

# Stack-independent: interface choice, srun variables and the watchdog's clock: no Keras in them.
pytestmark = pytest.mark.one_stack


def test_the_route_to_this_host_leaves_through_loopback():
    assert _network.interface_address("lo") == "127.0.0.1"
    assert _network.interface_to("127.0.0.1") == "lo"
    assert _network.is_loopback("lo")
    assert _network.interface_address("no-such-if0") is None


def test_unknown_interfaces_are_named_and_subnets_pass():
    assert _network.unknown_interfaces("lo,eth9, 10.0.0.0/8") == ["eth9"]
    assert _network.unknown_interfaces("lo") == []


@pytest.fixture
def clean_env(monkeypatch):
    """No launcher variables, and the whole environment restored afterwards: the functions
    under test write os.environ directly, as they do in a rank."""
    import os

    saved = dict(os.environ)
    for var in list(os.environ):
        if var.startswith(("HOROVOD_", "OMPI_", "SLURM", "PMIX_", "BWKERAS_")):
            monkeypatch.delenv(var)
    yield monkeypatch
    os.environ.clear()
    os.environ.update(saved)


def test_srun_tasks_get_horovods_rank_variables(clean_env):
    env = {"BWKERAS_SRUN_GLOO": "1", "SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "4",
           "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_NODEID": "1",
           "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_TASKS_PER_NODE": "2(x2)", "SLURMD_NODENAME": "node2"}
    for k, v in env.items():
        clean_env.setenv(k, v)
    assert _rank_env.apply_gloo_under_srun()
    import os

    got = {k: os.environ[k] for k in ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK",
                                      "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_RANK", "HOROVOD_CROSS_SIZE",
                                      "HOROVOD_HOSTNAME")}
    assert got == {"HOROVOD_RANK": "3", "HOROVOD_SIZE": "4", "HOROVOD_LOCAL_RANK": "1",
                   "HOROVOD_LOCAL_SIZE": "2", "HOROVOD_CROSS_RANK": "1", "HOROVOD_CROSS_SIZE": "2",
                   "HOROVOD_HOSTNAME": "node2"}


def test_srun_mapping_never_overrides_horovodrun(clean_env):
    clean_env.setenv("BWKERAS_SRUN_GLOO", "1")
    clean_env.setenv("SLURM_PROCID", "1")
    clean_env.setenv("HOROVOD_RANK", "0")   # horovodrun inside an allocation set it
    assert not _rank_env.apply_gloo_under_srun()
    import os

    assert os.environ["HOROVOD_RANK"] == "0"


def test_gloo_interface_follows_the_route_to_the_rendezvous(clean_env):
    clean_env.setenv("HOROVOD_CONTROLLER", "gloo")
    clean_env.setenv("HOROVOD_GLOO_RENDEZVOUS_ADDR", "127.0.0.1")
    assert _rank_env.apply_network_defaults() == {"HOROVOD_GLOO_IFACE": "lo"}


def test_the_users_interface_wins_and_a_wrong_one_is_named(clean_env):
    clean_env.setenv("HOROVOD_CONTROLLER", "gloo")
    clean_env.setenv("HOROVOD_GLOO_RENDEZVOUS_ADDR", "127.0.0.1")
    clean_env.setenv("HOROVOD_GLOO_IFACE", "eth9")
    assert _rank_env.apply_network_defaults() == {}
    with pytest.raises(ValueError, match=r"HOROVOD_GLOO_IFACE='eth9' names 'eth9', which this host"):
        _rank_env.check_interfaces()


def test_open_mpi_over_loopback_keeps_its_own_choice(clean_env):
    clean_env.setenv("OMPI_COMM_WORLD_SIZE", "2")
    clean_env.setenv("OMPI_MCA_orte_hnp_uri", "123;tcp://127.0.0.1:4567")
    assert _rank_env.launcher_address() == "127.0.0.1"
    assert _rank_env.apply_network_defaults() == {}   # loopback: Open MPI's shared memory does it


@pytest.mark.parametrize("text, expected", [("", 120.0), ("0", 0.0), ("30", 30.0), ("2.5", 2.5)])
def test_stall_seconds(monkeypatch, text, expected):
    from bwkeras.distributed.watchdog import stall_seconds

    monkeypatch.setenv("BWKERAS_STALL_SECONDS", text)
    assert stall_seconds() == expected


@pytest.mark.parametrize("text", ["abc", "-1", "inf", "nan"])
def test_bad_stall_seconds_are_named(monkeypatch, text):
    from bwkeras.distributed.watchdog import stall_seconds

    monkeypatch.setenv("BWKERAS_STALL_SECONDS", text)
    with pytest.raises(ValueError, match=f"BWKERAS_STALL_SECONDS='{text}'"):
        stall_seconds()


def _fit_with(watchdog, pause_at=None, pause=0.0):
    import keras
    import numpy as np

    class Pause(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == pause_at:
                time.sleep(pause)   # a collective that never returns, for `pause` seconds

    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((32, 2), dtype="float32")
    model.fit(x, x[:, :1], batch_size=4, epochs=2, verbose=0, callbacks=[watchdog, Pause()])


def test_the_watchdog_reports_a_stall_after_the_limit():
    from bwkeras.distributed.watchdog import StallWatchdog

    stalls = []
    watchdog = StallWatchdog(seconds=0.5, on_stall=stalls.append, poll=0.05)
    _fit_with(watchdog, pause_at=2, pause=2.0)
    assert len(stalls) == 1
    assert f"rank 0 on {socket.gethostname()} made no training progress" in stalls[0]
    assert "BWKERAS_STALL_SECONDS=0.5" in stalls[0] and "exit status 86" in stalls[0]


def test_the_watchdog_stays_quiet_while_training_progresses():
    from bwkeras.distributed.watchdog import StallWatchdog

    stalls = []
    watchdog = StallWatchdog(seconds=1.5, on_stall=stalls.append, poll=0.05)
    _fit_with(watchdog, pause_at=2, pause=0.3)   # slower steps, but within the limit
    time.sleep(0.2)
    assert stalls == [] and not watchdog._thread.is_alive()
