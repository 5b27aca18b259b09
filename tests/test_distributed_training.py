"""Data-parallel training under a real launcher: equivalence with one process, broadcast,
metric averaging, uneven data, compression, gradient accumulation, a dying rank."""
import os
from pathlib import Path

import numpy as np
import pytest

from bwkeras._keras import KERAS3
from launch import HAVE_MPIRUN, check, read_outputs, run_file, run_script

SCRIPT = Path(__file__).parent / "scripts" / "train_small.py"
pytestmark = pytest.mark.launcher


def flat(weights):
    return np.concatenate([np.ravel(np.asarray(w, dtype=np.float64)) for w in weights])


def run(tmp_path, launcher, np_, *args, timeout=150, env=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = check(run_file(tmp_path, SCRIPT, np=np_, launcher=launcher, args=args, timeout=timeout,
                          env=env))
    return read_outputs(proc, np_)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One process, no launcher: batch 16 over 64 samples, 3 epochs (12 SGD steps)."""
    (out,) = run(tmp_path_factory.mktemp("np1"), "none", 1, 64, 16, 3, "none", 1)
    assert out["size"] == 1 and out["iterations"] == 12
    return out


def check_equivalent(ranks, reference, atol):
    for out in ranks:
        assert out["size"] == 2
        np.testing.assert_allclose(flat(out["weights"]), flat(reference["weights"]), rtol=0, atol=atol)
    # Weights moved: equality is not the trivial "nobody trained".
    assert np.abs(flat(reference["weights"]) - flat(reference["initial"])).max() > 1e-2


@pytest.mark.parametrize("launcher", ["horovodrun", pytest.param(
    "mpirun", marks=pytest.mark.skipif(not HAVE_MPIRUN, reason="no MPI"))])
def test_two_ranks_train_like_one_process(tmp_path, reference, launcher):
    # 65 samples, not divisible by 2: each rank gets 32 (the 65th is dropped so both take
    # 4 steps per epoch, no hang). Strided shards of batch 8 make global step k cover samples
    # 16k..16k+15, exactly the single process's batch of 16.
    ranks = run(tmp_path, launcher, 2, 65, 8, 3, "none", 1)
    assert [o["n_local"] for o in ranks] == [32, 32]
    # Different seeds gave different initial weights on the two ranks ...
    assert np.abs(flat(ranks[0]["initial"]) - flat(ranks[1]["initial"])).max() > 1e-3
    # ... yet both end bit-for-bit equal, because every update applied the same averaged gradient.
    np.testing.assert_array_equal(flat(ranks[0]["weights"]), flat(ranks[1]["weights"]))
    # float32 sums taken in another order (two halves then an average, against one mean of
    # 16) differ by a few ulps per step; 12 steps of lr 0.05 keep that far below 1e-5.
    check_equivalent(ranks, reference, atol=1e-5)
    # The logged loss is the mean of the ranks' own losses.
    local = np.array([o["local_loss"] for o in ranks])
    np.testing.assert_allclose(ranks[0]["logged_loss"], local.mean(axis=0), rtol=1e-6)
    assert not np.allclose(local[0], local[1])  # the ranks' losses really differ


def test_buckets_give_the_weights_of_one_grouped_allreduce(tmp_path, reference):
    # 1-byte buckets: every gradient its own allreduce (4 here, in backprop's order),
    # against one grouped allreduce of all four. Each element is averaged over the same
    # two ranks either way, so the weights must agree bit for bit; with two passes per
    # update, so the accumulated gradients go through the buckets too.
    apart, grouped = (run(tmp_path / b, "horovodrun", 2, 65, 8, 3, "none", 2, env={"BUCKET_BYTES": b})
                      for b in ("1", "none"))
    for a, g in zip(apart, grouped):
        np.testing.assert_array_equal(flat(a["weights"]), flat(g["weights"]))
    # and one pass per update, buckets apart, trains like one process (as the test above)
    check_equivalent(run(tmp_path / "1-1", "horovodrun", 2, 65, 8, 3, "none", 1, env={"BUCKET_BYTES": "1"}),
                     reference, atol=1e-5)


def test_fp16_compression_trains_like_one_process(tmp_path, reference):
    ranks = run(tmp_path, "horovodrun", 2, 65, 8, 3, "fp16", 1)
    np.testing.assert_array_equal(flat(ranks[0]["weights"]), flat(ranks[1]["weights"]))
    # Gradients travel as float16 (unit roundoff 2**-11 = 4.9e-4), so each update is off by
    # at most ~5e-4 of itself; summed over the run that is ~5e-4 of the total weight
    # displacement. 2e-3 of the displacement leaves a factor 4 for accumulation effects,
    # and is still 10x below what a missing average (weights off by ~1e-2) would give.
    moved = np.abs(flat(reference["weights"]) - flat(reference["initial"])).max()
    check_equivalent(ranks, reference, atol=2e-3 * moved)


def test_backward_passes_accumulate_like_a_bigger_batch(tmp_path):
    # np=2, 8 per rank, 2 passes per update: every update averages 2 x 2 x 8 = 32 samples,
    # the same 32 as one process with batch 32. 4 epochs of 32 samples per rank = 8 updates.
    (big,) = run(tmp_path / "np1", "none", 1, 64, 32, 4, "none", 1)
    ranks = run(tmp_path / "np2", "horovodrun", 2, 65, 8, 4, "none", 2)
    assert big["iterations"] == 8
    # Keras 3 (ours) counts updates; Horovod's Keras 2 wrapper counts backward passes.
    assert [o["iterations"] for o in ranks] == [8, 8] if KERAS3 else [16, 16]
    np.testing.assert_array_equal(flat(ranks[0]["weights"]), flat(ranks[1]["weights"]))
    # Accumulating g/2 twice then averaging over ranks rounds differently from one mean of
    # 32 (float32, a few ulps per update over 8 updates): 1e-5 as in the plain case.
    check_equivalent(ranks, big, atol=1e-5)


def test_dead_rank_ends_the_job_with_an_error(tmp_path):
    proc = run_file(tmp_path, SCRIPT, np=2, launcher="horovodrun",
                    args=(65, 8, 50, "none", 1, 2), timeout=120)
    # The survivor must not wait forever in its next allreduce: the launcher notices the
    # dead rank, stops the job and says which rank failed.
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "exited with non-zero status" in text and "Process name: 1" in text, text[-3000:]
    assert not (proc.out_dir / "rank0.json").exists()


SHARE_CORES = """
import json, os
import keras
optimizer = keras.optimizers.SGD(0.1)  # TensorFlow starts before bwkeras.distributed is used
from bwkeras import distributed as d
d.init()
out = {"threads": d.cpu_threads(), "intra": os.environ.get("TF_NUM_INTRAOP_THREADS"),
       "inter": os.environ.get("TF_NUM_INTEROP_THREADS"),
       "yield": os.environ.get("OMPI_MCA_mpi_yield_when_idle")}
json.dump(out, open(os.path.join(os.environ["OUT_DIR"], f"rank{d.rank()}.json"), "w"))
"""


@pytest.mark.launcher
@pytest.mark.one_stack
@pytest.mark.timeout(240)
@pytest.mark.parametrize("launcher", ["horovodrun", "mpirun"])
def test_ranks_share_the_cores_and_mpi_yields(tmp_path, launcher):
    # No thread settings from the user: each of the 2 ranks gets half the cores it may use
    # (at least one), so two ranks never start a full-machine thread pool each.
    unset = {"TF_NUM_INTRAOP_THREADS": "", "TF_NUM_INTEROP_THREADS": "", "OMP_NUM_THREADS": ""}
    outs = read_outputs(check(run_script(tmp_path, SHARE_CORES, launcher=launcher, env=unset)), 2)
    share = max(len(os.sched_getaffinity(0)) // 2, 1)
    for out in outs:
        assert out["threads"] == share, out
        assert out["intra"] == out["inter"] == str(share), out
        assert out["yield"] == "1", out


@pytest.mark.launcher
@pytest.mark.one_stack
@pytest.mark.timeout(240)
def test_settings_of_the_user_win(tmp_path):
    outs = read_outputs(check(run_script(tmp_path, SHARE_CORES, launcher="mpirun", env={
        "TF_NUM_INTRAOP_THREADS": "", "TF_NUM_INTEROP_THREADS": "", "OMP_NUM_THREADS": "3",
        "OMPI_MCA_mpi_yield_when_idle": "0"})), 2)
    for out in outs:
        assert out["threads"] == 3 and out["intra"] == out["inter"] == "3", out
        assert out["yield"] == "0", out
    outs = read_outputs(check(run_script(tmp_path, SHARE_CORES, launcher="mpirun", env={
        "TF_NUM_INTRAOP_THREADS": "2", "TF_NUM_INTEROP_THREADS": "", "OMP_NUM_THREADS": ""})), 2)
    for out in outs:
        assert out["threads"] is None and out["intra"] == "2" and out["inter"] == "", out
