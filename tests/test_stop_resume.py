"""A stop request inside an epoch ends training within train.commit_steps steps, and the
resumed run ends with the weights of an uninterrupted one, bit for bit (CPU), with
shuffle on: two ranks under horovodrun, Adam, 3 epochs of 13 steps."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from bwkeras import checkpoints
from bwkeras.exit_codes import EXIT_PREEMPTED
from launch import check, read_outputs, run_file

SCRIPT = Path(__file__).parent / "scripts" / "stop_resume.py"
STEPS_PER_EPOCH = 13    # 100 samples per rank, batch 8
K = 5                   # train.commit_steps
SIGNAL_AT = 14          # the warning arrives after step 1 of epoch 2


def flat(weights):
    return np.concatenate([np.ravel(np.asarray(w, dtype=np.float32)) for w in weights])


def launch(tmp_path, run_dir, signal_at):
    tmp_path.mkdir(parents=True, exist_ok=True)
    return run_file(tmp_path, SCRIPT, np=2, args=(run_dir, K, signal_at), timeout=240)


@pytest.mark.launcher
@pytest.mark.timeout(720)
def test_stop_inside_an_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    whole = read_outputs(check(launch(tmp_path / "a", tmp_path / "run-a", -1)), 2)
    assert whole[0]["iterations"] == 3 * STEPS_PER_EPOCH and whole[0]["epochs"] == [0, 1, 2]

    run_b = tmp_path / "run-b"
    stopped = launch(tmp_path / "b", run_b, SIGNAL_AT)
    text = stopped.stdout + stopped.stderr
    # horovodrun reports the ranks' status as its own failure; the ranks' own is 85
    assert stopped.returncode != 0 and f"exit code: {EXIT_PREEMPTED}" in text.lower() \
        or stopped.returncode == EXIT_PREEMPTED, text[-4000:]
    assert not (stopped.out_dir / "rank0.json").exists()  # it did not train to the end
    folder = run_b / "checkpoints"
    state = json.loads((folder / checkpoints.PARTIAL).read_text())
    stop_at = state["epoch"] * STEPS_PER_EPOCH + state["step"]
    # stopped at the first check after the warning: within K steps, not at the epoch end
    assert state["epoch"] == 1 and 0 <= stop_at - SIGNAL_AT <= K, state
    assert state["step"] % K == 0 and state["step"] < STEPS_PER_EPOCH, state
    assert json.loads((folder / checkpoints.LATEST).read_text())["epoch"] == 1
    # the epoch cut short has no row in the history and no epoch checkpoint
    assert [r["epoch"] for r in csv.DictReader(open(run_b / "history.csv"))] == ["1"]

    resumed = read_outputs(check(launch(tmp_path / "c", run_b, -1)), 2)
    assert resumed[0]["epochs"] == [1, 2]
    assert resumed[0]["steps"] == 3 * STEPS_PER_EPOCH - stop_at  # the rest, nothing twice
    assert resumed[0]["iterations"] == whole[0]["iterations"]
    for out in resumed:
        np.testing.assert_array_equal(flat(out["weights"]), flat(whole[0]["weights"]))
    np.testing.assert_array_equal(flat(whole[0]["weights"]), flat(whole[1]["weights"]))
    assert [r["epoch"] for r in csv.DictReader(open(run_b / "history.csv"))] == ["1", "2", "3"]
    assert not (folder / checkpoints.PARTIAL).exists()  # a later whole epoch replaced it


class FakeModel:
    """Saves a small zip archive, as model.save writes a .keras file."""

    def save(self, path):
        import zipfile

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("config.json", "{}")


def test_a_partial_checkpoint_is_found_until_a_whole_epoch_replaces_it(tmp_path):
    folder = checkpoints.directory(tmp_path)
    assert checkpoints.partial(tmp_path) is None
    checkpoints.save(FakeModel(), folder, 1)
    path = checkpoints.save_partial(FakeModel(), folder, 1, 10)
    assert checkpoints.partial(tmp_path) == (1, 10, path)
    assert checkpoints.exists(tmp_path)
    checkpoints.save(FakeModel(), folder, 2)      # the epoch it stopped in, complete
    assert checkpoints.partial(tmp_path) is None
    assert not os.path.exists(path)


def test_a_run_stopped_in_its_first_epoch_can_resume(tmp_path):
    from bwkeras import runs

    checkpoints.save_partial(FakeModel(), checkpoints.directory(tmp_path), 0, 5)
    (tmp_path / runs.CONFIG_FILE).write_text("{}\n")
    runs.check_target(resume=tmp_path)            # raises when the run is not resumable
    assert checkpoints.partial(tmp_path)[:2] == (0, 5)


def test_a_damaged_partial_checkpoint_is_passed_over_with_a_warning(tmp_path):
    folder = checkpoints.directory(tmp_path)
    checkpoints.save(FakeModel(), folder, 1)
    path = checkpoints.save_partial(FakeModel(), folder, 1, 10)
    with open(path, "ab") as fh:
        fh.write(b"torn")
    with pytest.warns(checkpoints.CheckpointWarning, match="SHA-256"):
        assert checkpoints.partial(tmp_path) is None
    assert checkpoints.latest(tmp_path)[0] == 1


@pytest.mark.parametrize("epoch, step", [(-1, 3), (1, 0), (1.5, 2), (True, 2)])
def test_save_partial_names_a_bad_position(tmp_path, epoch, step):
    with pytest.raises(ValueError, match="partial checkpoint"):
        checkpoints.save_partial(FakeModel(), str(tmp_path), epoch, step)


def test_checkpoints_record_the_ranks_that_wrote_them(tmp_path):
    folder = checkpoints.directory(tmp_path)
    old = checkpoints.save(FakeModel(), folder, 1)              # an index from before: no ranks
    new = checkpoints.save(FakeModel(), folder, 2, ranks=3)
    part = checkpoints.save_partial(FakeModel(), folder, 2, 4, ranks=2)
    assert (checkpoints.saved_ranks(old), checkpoints.saved_ranks(new), checkpoints.saved_ranks(part)) \
        == (None, 3, 2)
    checkpoints.save(FakeModel(), folder, 3, ranks=2)
    assert checkpoints.saved_ranks(new) == 3                     # kept with its older entry
    with pytest.raises(ValueError, match="ranks must be an integer >= 1, got 0"):
        checkpoints.save(FakeModel(), folder, 4, ranks=0)


@pytest.mark.parametrize("rule, expected", [("linear", 0.04 / 4), ("sqrt", 0.04 / 2), ("none", 0.04)])
def test_a_run_resumed_on_fewer_ranks_rescales_the_checkpoints_learning_rate(tmp_path, rule, expected):
    """A checkpoint written by 4 ranks at 0.04 (a schedule may have moved it from the
    compiled rate: the restored rate is what is re-scaled), resumed in one process: the
    rate lr_rule gives one rank, i.e. 0.04 / 4 (linear), / 2 (sqrt), unchanged (none)."""
    import keras

    from bwkeras import runs, training

    def model(lr):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        m.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse")
        m(np.zeros((1, 3), "float32"))
        return m

    trained = model(0.04)
    from bwkeras._keras import build_optimizer

    build_optimizer(trained)
    checkpoints.save(trained, checkpoints.directory(tmp_path), 2, ranks=4)
    resumed = model(0.123)                                       # compiled at another rate
    run = runs.Run(str(tmp_path), "test", resumed=True, is_chief=True)
    assert training.prepare(resumed, run, epochs=3, lr_rule=rule) == 2
    assert float(np.asarray(resumed.optimizer.learning_rate)) == pytest.approx(expected, rel=1e-6)


def test_checkpoints_record_the_learning_rate_they_were_trained_at(tmp_path):
    # Keras 2 keeps no learning rate in the .keras file, so the index does, for both stacks
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.04), loss="mse")
    folder = checkpoints.directory(tmp_path)
    whole = checkpoints.save(model, folder, 1, ranks=2)
    part = checkpoints.save_partial(model, folder, 1, 3)
    assert checkpoints.saved_learning_rate(whole) == pytest.approx(0.04)
    assert checkpoints.saved_learning_rate(part) == pytest.approx(0.04)
    # a model without an optimizer, or an index from before: nothing recorded
    assert checkpoints.saved_learning_rate(checkpoints.save(FakeModel(), folder, 2)) is None
