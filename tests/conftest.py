import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/launch.py, tests/slurm_cluster.py


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
