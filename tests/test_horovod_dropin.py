"""bwkeras.horovod, the drop-in for horovod.tensorflow.keras, and the guard against Horovod's
own Keras layer on Keras 3.

Each job runs in its own processes (Horovod starts there, never in the test process):
one plain process (Horovod at size 1), two ranks under horovodrun, and Horovod's own
Keras layer with bwkeras imported."""
from pathlib import Path

import numpy as np
import pytest

from bwkeras._keras import KERAS3
from launch import check, read_outputs, run_file

SCRIPTS = Path(__file__).parent / "scripts"
SEED_STRIDE, SEED_MODULUS = 2654435761, 2**31 - 2   # bwkeras.distributed.keras_callbacks


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dropin-single")
    proc = check(run_file(tmp, SCRIPTS / "horovod_dropin_single.py", np=1, launcher="none",
                          timeout=180))
    (out,) = read_outputs(proc, 1)
    return out


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dropin-np2")
    proc = check(run_file(tmp, SCRIPTS / "horovod_dropin_job.py", np=2, launcher="horovodrun",
                          timeout=180))
    return read_outputs(proc, 2)


# ---- one process -----------------------------------------------------------------------

def test_init_works_alone_and_leaves_tf_config_open(single):
    # Horovod's hvd.init(): size 1 without a launcher; and a script can still pin its GPU
    # afterwards (set_visible_devices / thread settings raise once TensorFlow's runtime
    # has started, so they are the CPU-side proof that init did not start it).
    assert single["size"] == 1 and single["initialized"] is True
    assert single["config_after_init"] == "ok"
    assert single["before_init"] == ["ValueError", "Horovod has not been initialized; use hvd.init()."]


def test_horovods_names_are_all_there(single):
    assert single["missing"] == []
    assert single["compression"] == ["NoneCompressor", "FP16Compressor"]


@pytest.mark.parametrize("keyword, kind, match", [
    ("op", "ValueError", "op=hvd.Adasum: .*only hvd.Average and hvd.Sum"),
    ("gradient_predivide_factor", "ValueError", "gradient_predivide_factor=2.0 applies only to op=hvd.Average"),
    ("compression", "ValueError", "compression must be .*got 'fp16'"),
    ("backward_passes_per_step", "ValueError", "backward_passes_per_step must be an integer >= 1, got 0"),
    ("groups", "ValueError", "groups should be .*got -1"),
    ("sparse_as_dense", "ValueError", "sparse_as_dense must be True or False, got 'yes'"),
    ("optimizer", "TypeError", "Keras optimizer instance.*'sgd'"),
    ("initial_lr", "ValueError", "`initial_lr` is required"),
    ("local_variables", "ValueError", "All local variables must be"),
])
def test_a_keyword_that_cannot_be_honoured_is_an_error_naming_it(single, keyword, kind, match):
    import re

    got = single["errors"][keyword]
    assert got is not None and got[0] == kind and re.search(match, got[1]), got


def test_compile_takes_experimental_run_tf_function_and_nothing_else_new(single):
    # Keras 2.15 pops the keyword itself; on Keras 3 bwkeras.horovod drops that one
    # keyword, and Keras still rejects any other it does not know.
    kind, message = single["compile_bogus"]
    assert kind == "TypeError" and "bogus_keyword" in message


def test_optimizer_variables_keep_working(single):
    # Keras 3: a plain list (checkpoints read it); Keras 2: Horovod's callable list.
    assert single["variables_callable"] is (not KERAS3)
    assert single["variable_count"] >= 1


def horovod_momentum(lrs, initial, mu, step, correct=True):
    """Weights after SGD-like steps with Horovod's momentum correction: each step that
    follows a rate change from a to b runs with momentum mu * b / a. `step(state, eta, m)`
    returns the new state; every gradient is 1 (see the job)."""
    state, previous = None, initial
    for eta in lrs:
        state = step(state, eta, mu * eta / previous if correct else mu)
        previous = eta
    return state["w"]


def sgd(nesterov):
    def step(s, eta, m):
        s = s or {"w": 0.0, "v": 0.0}
        v = m * s["v"] - eta
        w = s["w"] + (m * v - eta if nesterov else v)
        return {"w": w, "v": v}
    return step


def rmsprop(rho=0.9, eps=1e-7):
    def step(s, eta, m):
        s = s or {"w": 0.0, "v": 0.0, "ms": 0.0}
        ms = rho * s["ms"] + (1 - rho)           # mean square of gradients of 1
        v = m * s["v"] + eta / np.sqrt(ms + eps)
        return {"w": s["w"] - v, "v": v, "ms": ms}
    return step


@pytest.mark.parametrize("case", ["sgd", "nesterov", "rmsprop"] + ([] if KERAS3 else [
    "nesterov_current", "horovod_own", "legacy_ours"]))
def test_momentum_correction_follows_horovods_rule(single, case):
    # Keras 3 compiles the momentum into the step, so the callbacks rescale the velocity
    # instead of the momentum: the weights must be what Horovod's temporary momentum gives.
    run = single["momentum"][case]
    step = {"sgd": sgd(False), "nesterov": sgd(True), "rmsprop": rmsprop(),
            "nesterov_current": sgd(True), "horovod_own": sgd(False), "legacy_ours": sgd(False)}[case]
    # Schedule: 0.1 * (0.5 + epoch / 4) per batch over epochs 0-1, then 0.1 from epoch 2.
    assert run["lr"][0] == pytest.approx(0.05) and run["lr"][-1] == pytest.approx(0.1)
    expected = horovod_momentum(run["lr"], 0.1, 0.9, step)
    # float32 weights over 12 steps against a float64 recurrence.
    assert run["w"] == pytest.approx(expected, rel=1e-5)
    # Without the correction the weights would be elsewhere: the check can fail.
    uncorrected = horovod_momentum(run["lr"], 0.1, 0.9, step, correct=False)
    assert abs(uncorrected - run["w"]) > 100 * 1e-5 * abs(run["w"])


def test_best_model_checkpoint(single):
    assert single["best_unset"][0] == "ValueError" and "no filepath" in single["best_unset"][1]
    assert single["best_written"] is True


# ---- two ranks -------------------------------------------------------------------------

@pytest.mark.launcher
def test_collectives_follow_horovod(two_ranks):
    for r, out in enumerate(two_ranks):
        assert out["config_after_init"] == "ok"
        # allreduce AVERAGES by default, as Horovod's; bwkeras.distributed's keeps summing.
        assert out["allreduce"] == [1.5, 15.0] and out["allreduce_sum"] == [3.0, 30.0]
        assert out["dist_allreduce"] == [3.0]
        # ... inside tf.function too.
        assert out["graph"] == [[1.5, 15.0], [1.0, 10.0, 2.0, 20.0], [2.0, 20.0]]
        assert out["allgather"] == [0.0, 1.0, 1.0]          # uneven first dimensions
        assert out["broadcast"] == [2.0, 20.0]
        assert out["alltoall"] == [r, 10 + r]
        assert out["broadcast_object"] == {"from": 1}
        assert out["allgather_object"] == [["rank", 0], ["rank", 1]]
        assert out["broadcast_variables"] == [1.0, 1.0]
        assert out["join"] in (0, 1)


def horovod_rates(size=2, steps=3, epochs=7):
    """The rates Horovod's callbacks set in the job, batch by batch, from Horovod's
    formulas (horovod/_keras/callbacks.py): warmup over epochs 0-1, 0.5 ** (e - 3) at the
    start of epochs 3-4, initial / (1 + fractional epoch) per batch in epoch 5."""
    initial, lr, out = 0.1 * size, None, []
    for e in range(epochs):
        for b in range(steps):
            if e < 2:
                epoch = e + b / steps + 1 / steps
                lr = initial / size * (epoch * (size - 1) / 2 + 1)
            elif 3 <= e < 5 and b == 0:
                lr = initial * 0.5 ** (e - 3)
            elif e == 5:
                lr = initial / (1 + e + b / steps)
            out.append(lr)
    return out


@pytest.mark.launcher
def test_learning_rate_callbacks_give_horovods_rates(two_ranks):
    expected = horovod_rates()
    for out in two_ranks:
        np.testing.assert_allclose(out["lr_batches"], expected, rtol=1e-6)  # float32 rate
        np.testing.assert_allclose(out["lr_epochs"], expected[2::3], rtol=1e-6)


@pytest.mark.launcher
def test_load_model_wraps_the_optimizer_with_its_state(two_ranks):
    for out in two_ranks:
        assert out["loaded"]["optimizer"] == "Adam" and out["loaded"]["iterations"] == 3
        assert out["loaded"]["moved"] > 1e-3
    # Trained on different data after loading, the ranks still agree: the loaded
    # optimizer averages the gradients.
    assert two_ranks[0]["loaded"]["digest"] == two_ranks[1]["loaded"]["digest"]


@pytest.mark.launcher
@pytest.mark.skipif(not KERAS3, reason="Keras 3 SeedGenerator state")
def test_ranks_draw_different_dropout_masks_reproducibly(two_ranks):
    # Every rank seeded the same (the correlated case); the broadcast copies rank 0's seed
    # state, then each rank's is moved off it by its rank.
    root = two_ranks[0]["seed"]["root_start"]
    for r, out in enumerate(two_ranks):
        seed = out["seed"]
        expected = root if r == 0 else [root[0] % SEED_MODULUS + r * SEED_STRIDE, root[1]]
        assert seed["after"] == expected
        # The same broadcast state gives the same state and masks again: reproducible.
        assert seed["repeat_after"] == seed["after"] and seed["repeat_masks"] == seed["masks"]
        assert seed["masks"][0] != seed["masks"][1]    # the stream advances
    assert two_ranks[0]["seed"]["masks"] != two_ranks[1]["seed"]["masks"]


# ---- the guard against Horovod's own Keras layer ---------------------------------------

GUARD_WORDS = ("does not work with Keras 3", "every rank would train alone",
               "import bwkeras.horovod as hvd")


def test_horovods_own_keras_layer_is_refused_on_keras3(tmp_path):
    # bwkeras imported first: the guard waits for Horovod's Keras layer to be imported.
    proc = check(run_file(tmp_path, SCRIPTS / "horovod_guard_job.py", np=1, launcher="none",
                          args=("bwkeras-first", "record"), timeout=180))
    (out,) = read_outputs(proc, 1)
    if not KERAS3:  # Horovod's own layer works on Keras 2: nothing to refuse
        assert out == {"optimizer": None, "callbacks": None, "custom_loop": None}
        return
    for use, what in [("optimizer", "DistributedOptimizer"), ("callbacks", "BroadcastGlobalVariablesCallback"),
                      ("custom_loop", "DistributedOptimizer")]:
        kind, message = out[use]
        assert kind == "HorovodKerasError" and what in message, (use, out[use])
        assert all(w in message for w in GUARD_WORDS), message


@pytest.mark.launcher
@pytest.mark.skipif(not KERAS3, reason="the guard acts on Keras 3 only")
def test_a_horovod_keras_job_fails_at_its_first_fit(tmp_path):
    # Horovod's Keras layer imported first: the guard patches it when bwkeras arrives.
    proc = run_file(tmp_path, SCRIPTS / "horovod_guard_job.py", np=2, launcher="horovodrun",
                    args=("horovod-first", "raise"), timeout=180)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "HorovodKerasError" in text and all(w in text for w in GUARD_WORDS), text[-3000:]
    assert "trained without the guard firing" not in text
