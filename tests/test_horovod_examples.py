"""Horovod's own Keras examples, changed only in their import line (`import bwkeras.horovod
as hvd`), at np=2 under horovodrun --gloo and mpirun: they exit 0, every rank ends with the
same weights, the logged loss is the mean of the ranks' losses, and the warmup callback
sets Horovod's learning rate epoch by epoch. tests/horovod_examples/README.md lists what
the harness does around the scripts."""
import json
from pathlib import Path

import numpy as np
import pytest

from launch import HAVE_MPIRUN, check, run_file

pytestmark = pytest.mark.launcher

EXAMPLES = Path(__file__).parent / "horovod_examples"
MNIST = "tensorflow2_keras_mnist"
BENCH = "tensorflow2_keras_synthetic_benchmark"
EPOCHS, STEPS = 4, 2   # the MNIST script's warmup stays its 3 epochs: 3 ramping, 1 at the top
# mpirun is launcher mechanics: on the keras2 stack the examples run under horovodrun only
LAUNCHERS = ["horovodrun", pytest.param("mpirun", marks=[pytest.mark.one_stack,
                                                         pytest.mark.skipif(not HAVE_MPIRUN, reason="no MPI")])]


@pytest.fixture(scope="module", params=LAUNCHERS)
def job(request, tmp_path_factory):
    """Both scripts, one after the other in the same two processes (one TensorFlow and one
    Horovod start for both). The benchmark compresses its gradients to fp16 under horovodrun
    only, so both of its paths run."""
    launcher = request.param
    tmp = tmp_path_factory.mktemp(f"examples-{launcher}")
    bench = ["--model", "MobileNet", "--batch-size", "2", "--num-batches-per-iter", "2",
             "--num-iters", "2"] + (["--fp16-allreduce"] if launcher == "horovodrun" else [])
    proc = check(run_file(tmp, EXAMPLES / "run_example.py", np=2, launcher=launcher, timeout=240,
                          env={"EXAMPLE_FIT": f"{MNIST}={EPOCHS}x{STEPS}"},
                          args=[EXAMPLES / f"{MNIST}.py", "--then", EXAMPLES / f"{BENCH}.py", *bench]))
    outs = {name: [json.loads((proc.out_dir / f"{name}-rank{r}.json").read_text()) for r in range(2)]
            for name in (MNIST, BENCH)}
    return proc, outs, tmp


def check_data_parallel(ranks):
    assert [o["rank"] for o in ranks] == [0, 1] and all(o["size"] == 2 for o in ranks)
    # Every update used the same averaged gradient: bit-identical trainable weights.
    assert ranks[0]["trainable_digest"] == ranks[1]["trainable_digest"]
    # The logged loss is the mean of the ranks' own epoch losses (which differ: each rank
    # drew its own batches), as MetricAverageCallback promises; float32 values averaged.
    local = np.array([[e["loss"] for e in o["local"]] for o in ranks])
    assert not np.allclose(local[0], local[1])
    for o in ranks:
        np.testing.assert_allclose(o["logged"]["loss"], local.mean(axis=0), rtol=1e-6)


def test_mnist_example_trains_data_parallel(job):
    proc, outs, tmp = job
    ranks = outs[MNIST]
    check_data_parallel(ranks)
    # No batch normalisation here: all weights agree, not only the trainable ones.
    assert ranks[0]["weights_digest"] == ranks[1]["weights_digest"]
    assert all(o["optimizer"] == "Adam" and len(o["local"]) == EPOCHS for o in ranks)
    # Rank 0's ModelCheckpoint wrote every epoch (it saves optimizer.variables too).
    assert sorted(p.name for p in tmp.glob("checkpoint-*.h5")) == [
        f"checkpoint-{e}.h5" for e in range(1, EPOCHS + 1)]
    assert "finished gradual learning rate warmup to 0.002" in proc.stdout


def test_mnist_example_warmup_gives_horovods_rates(job):
    _, outs, _ = job
    # LearningRateWarmupCallback(initial_lr=0.001 * size, warmup_epochs=3): Horovod's
    # lr(e) = initial_lr / size * (e * (size - 1) / warmup + 1), and each epoch ends at
    # e = epoch + 1 (the fractional epoch is advanced by one batch); after the warmup the
    # rate stays at initial_lr.
    size, initial, warmup = 2, 0.002, 3
    expected = [initial / size * (min(e + 1, warmup) * (size - 1) / warmup + 1) for e in range(EPOCHS)]
    for o in outs[MNIST]:
        np.testing.assert_allclose(o["logged"]["lr"], expected, rtol=1e-6)  # float32 variable


def test_synthetic_benchmark_trains_data_parallel(job):
    proc, outs, _ = job
    ranks = outs[BENCH]
    check_data_parallel(ranks)
    assert all(o["optimizer"] == "SGD" and o["iterations"] == 4 for o in ranks)
    # MobileNet's batch-normalisation statistics are each rank's own, as with Horovod.
    assert ranks[0]["weights_digest"] != ranks[1]["weights_digest"]
    assert "Total img/sec on 2 CPU(s)" in proc.stdout or "Total img/sec on 2 GPU(s)" in proc.stdout
