import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/launch.py, tests/slurm_cluster.py


def pytest_configure(config):
    config.addinivalue_line("markers", "cluster: runs across the nodes of the cluster in a box (tests/cluster.py)")
    config.addinivalue_line(
        "markers", "one_stack: mechanics that do not depend on the Keras major (launchers, schedulers, "
        "the cluster in a box, parsers, the docs build): run on the keras3 stack only, unless "
        "BWKERAS_ALL_TESTS=1")


def _keras2_stack():
    from importlib import metadata

    try:
        return metadata.version("keras").startswith("2.")
    except metadata.PackageNotFoundError:
        return False


# Under pytest-xdist (`make test` runs two workers: a third of the suite's time is waits on
# launchers, schedulers and fault timeouts, which the other worker fills), each test file
# is one unit of work, so its module fixtures (reference jobs) are built once, and every
# test on the cluster in a box is one more: the box has fixed namespace names and one
# worker owns it.
BOX_FIXTURES = {"box", "box_slurm"}


def _xdist_groups(items):
    on_box = [i for i in items if BOX_FIXTURES & set(getattr(i, "fixturenames", ()))]
    for item in items:
        item.add_marker(pytest.mark.xdist_group("box" if item in on_box else item.nodeid.split("::")[0]))
    # The box's tests, the longest unit (some 9 minutes), first: started last, they would
    # leave the other worker idle at the end.
    items[:] = on_box + [i for i in items if i not in on_box]


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the groups
def pytest_collection_modifyitems(config, items):
    _xdist_groups(items)
    # Both stacks run everything that touches Keras or TensorFlow; what only starts
    # processes, schedulers and namespaces runs once, keeping CI's two passes short.
    if os.environ.get("BWKERAS_ALL_TESTS") == "1" or not _keras2_stack():
        return
    chosen = [i for i in items if i.get_closest_marker("one_stack") is None]
    dropped = [i for i in items if i.get_closest_marker("one_stack") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = chosen
        config._bwkeras_one_stack = len(dropped)


def pytest_terminal_summary(terminalreporter, config):
    dropped = getattr(config, "_bwkeras_one_stack", 0)
    if dropped:
        terminalreporter.write_line(
            f"keras2 stack: {dropped} stack-independent tests (marker one_stack) run on the keras3 "
            "stack only; BWKERAS_ALL_TESTS=1 runs them here too")


@pytest.fixture(scope="session")
def box():
    """The cluster in a box, three nodes, for the whole session; removed at the end.

    Skipped without root or its tools, except where BWKERAS_REQUIRE_CLUSTER=1 (CI): there
    a skip would hide that multi-node was never tested, so it fails instead."""
    import cluster

    why = None
    if os.geteuid() != 0:
        why = "needs root (network namespaces)"
    elif cluster.missing_tools():
        why = f"missing {cluster.missing_tools()} (.ci/run installs them)"
    if why:
        if os.environ.get("BWKERAS_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"cluster in a box required but unavailable: {why}")
        pytest.skip(f"cluster in a box: {why}")
    box = cluster.Cluster(int(os.environ.get("BWKERAS_CLUSTER_NODES", "3")))
    try:
        box.up()
        yield box
    finally:
        box.down()


@pytest.fixture(scope="session")
def box_slurm(box):
    """Slurm across the box: slurmctld on node1, slurmd on every node."""
    from slurm_cluster import missing_tools

    missing = missing_tools()
    if missing:
        if os.environ.get("BWKERAS_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"Slurm required but missing {missing}")
        pytest.skip(f"Slurm not installed (missing {missing}); .ci/run installs it")
    return box.slurm()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A running single-node Slurm; skipped where its Debian packages are not installed."""
    from slurm_cluster import SlurmCluster, missing_tools

    missing = missing_tools()
    if missing:
        pytest.skip(f"Slurm not installed (missing {missing}); .ci/run installs it")
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()
