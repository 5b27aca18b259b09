"""A damaged run folder is never silently restarted: each damage of the hardening issue
(index lost or truncated, checkpoint truncated, emptied or bit-flipped, a name outside the
run, an impossible epoch, pruning past epoch 9999, temporaries of a killed write) and what
bwkeras does with it: rebuild, fall back to the newest intact checkpoint, or refuse."""
import csv
import dataclasses
import hashlib
import json
import os
import zipfile

import keras
import numpy as np
import pytest

from bwkeras import checkpoints, runs, training
from bwkeras import config as C


@dataclasses.dataclass
class Tiny(training.RecipeConfig):
    train: training.TrainConfig = dataclasses.field(
        default_factory=lambda: training.TrainConfig(epochs=3, batch_size=16, shuffle=False))
    run: training.RunConfig = dataclasses.field(
        default_factory=lambda: training.RunConfig(tensorboard=False, checkpoint_keep=3))


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]])).astype("float32")


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished 3-epoch run folder (checkpoints 1, 2 and 3 kept) and each epoch's weights."""
    root = tmp_path_factory.mktemp("trained")
    x, y = _data()
    cfg = Tiny()
    run = runs.start("demo", cfg, run_dir=root / "run")
    model = _model()
    weights = {}

    class Keep(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            weights[epoch + 1] = [w.copy() for w in self.model.get_weights()]

    training.fit(model, run, x, y, cfg.train, verbose=0, extra_callbacks=[Keep()])
    return root / "run", weights


@pytest.fixture
def run_dir(trained, tmp_path):
    """A fresh copy of the trained run to damage."""
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(trained[0], copy)
    return copy


def ck(run_dir, epoch=None):
    folder = run_dir / "checkpoints"
    return folder if epoch is None else folder / f"epoch-{epoch:04d}.keras"


def restored(run_dir, epochs=3):
    """(initial epoch, weights) after resuming `run_dir` the way --run-dir does."""
    cfg = C.load(Tiny(), sets=[f"train.epochs={epochs}"])
    run = runs.start("demo", cfg, run_dir=run_dir)
    model = _model(seed=7)
    model(np.zeros((1, 3), "float32"))
    epoch = training.prepare(model, run, epochs=epochs)
    return epoch, model.get_weights()


def same(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b))


def test_the_index_records_each_checkpoints_sha256(run_dir):
    state = json.loads((ck(run_dir) / "latest.json").read_text())
    assert state["epoch"] == 3 and state["file"] == "epoch-0003.keras"
    for entry in state["checkpoints"]:
        data = (ck(run_dir) / entry["file"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert [e["epoch"] for e in state["checkpoints"]] == [1, 2, 3]


def test_an_intact_run_resumes_without_a_warning(run_dir, trained, recwarn):
    epoch, weights = restored(run_dir)
    assert epoch == 3 and same(weights, trained[1][3])
    assert not [w for w in recwarn if issubclass(w.category, checkpoints.CheckpointWarning)]


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _empty(path):
    path.write_bytes(b"")


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, in the middle of the archive
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _empty, _flip], ids=["truncated", "empty", "bit-flip"])
def test_a_corrupt_latest_checkpoint_is_named_and_the_previous_one_used(run_dir, trained, damage):
    damage(ck(run_dir, 3))
    with pytest.warns(checkpoints.CheckpointWarning) as caught:
        epoch, weights = restored(run_dir)
    message = next(str(w.message) for w in caught
                   if issubclass(w.category, checkpoints.CheckpointWarning))
    assert f"checkpoint {ck(run_dir, 3)} is damaged" in message
    assert "SHA-256 differs" in message and "epoch 2" in message
    assert epoch == 2 and same(weights, trained[1][2])


def test_a_bit_flip_the_zip_check_alone_misses_is_caught_by_the_checksum(run_dir):
    """The outside reference for why the checksum is recorded: zipfile's own CRC check
    passes a flip in a member's modification time."""
    path = ck(run_dir, 3)
    data = bytearray(path.read_bytes())
    data[data.index(b"PK\x03\x04") + 10] ^= 0x01  # first local header, time field
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # zip CRCs still pass
    with pytest.warns(checkpoints.CheckpointWarning, match="SHA-256 differs"):
        assert checkpoints.latest(str(run_dir))[0] == 2


def test_latest_json_deleted_rebuilds_from_the_files_never_restarts(run_dir, trained):
    (ck(run_dir) / "latest.json").unlink()
    history = (run_dir / "history.csv").read_text()
    with pytest.warns(checkpoints.CheckpointWarning, match="latest.json is missing"):
        epoch, weights = restored(run_dir)
    assert epoch == 3 and same(weights, trained[1][3])
    assert (run_dir / "history.csv").read_text() == history
    assert sorted(os.listdir(ck(run_dir))) == [f"epoch-000{e}.keras" for e in (1, 2, 3)]


def test_latest_json_deleted_and_latest_file_corrupt_uses_the_newest_whole_archive(run_dir, trained):
    (ck(run_dir) / "latest.json").unlink()
    _truncate(ck(run_dir, 3))
    with pytest.warns(checkpoints.CheckpointWarning, match="not a whole .keras archive"):
        epoch, weights = restored(run_dir)
    assert epoch == 2 and same(weights, trained[1][2])


@pytest.mark.parametrize("text, problem", [
    (None, "is not valid JSON"),   # truncated
    ('{"epoch": 3, "file": "../../../etc/passwd"}', "not a checkpoint file of this folder"),
    ('{"epoch": 1000000, "file": "epoch-0003.keras"}', "gives epoch 1000000 for the file"),
    ('{"epoch": 1000000, "file": "epoch-1000000.keras"}', "does not exist"),
    ('["epoch", 3]', "is not a JSON object"),
    ('{"epoch": true, "file": "epoch-0001.keras"}', "not a positive integer"),
], ids=["truncated", "outside", "epoch-mismatch", "epoch-missing-file", "not-object", "bool-epoch"])
def test_a_damaged_index_is_named_and_the_files_used(run_dir, trained, text, problem):
    index = ck(run_dir) / "latest.json"
    index.write_text(index.read_text()[:20] if text is None else text)
    with pytest.warns(checkpoints.CheckpointWarning, match=problem):
        epoch, weights = restored(run_dir)
    assert epoch == 3 and same(weights, trained[1][3])


def test_a_link_out_of_the_run_folder_is_refused(run_dir, tmp_path):
    outside = tmp_path / "elsewhere.keras"
    outside.write_bytes(ck(run_dir, 3).read_bytes())
    for e in (1, 2, 3):
        ck(run_dir, e).unlink()
    os.symlink(outside, ck(run_dir, 3))
    (ck(run_dir) / "latest.json").unlink()
    with pytest.raises(checkpoints.CheckpointError, match="outside the run folder"):
        checkpoints.latest(str(run_dir))


def test_no_intact_checkpoint_is_refused_with_a_message_and_nothing_changes(run_dir):
    for e in (1, 2, 3):
        _flip(ck(run_dir, e))
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(checkpoints.CheckpointError) as err:
        runs.start("demo", Tiny(), run_dir=run_dir)
    message = str(err.value)
    assert "no intact checkpoint" in message and "start a new run" in message
    assert all(str(ck(run_dir, e)) in message for e in (1, 2, 3))
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    with pytest.raises(C.ConfigError, match="no intact checkpoint"):  # and the command line
        from recipes import args as recipe_args

        recipe_args.resolve(Tiny(), run_dir=str(run_dir))


def test_a_restored_epoch_past_the_configured_epochs_is_refused(run_dir):
    with pytest.raises(checkpoints.CheckpointError, match="epoch 3, past the 2 epochs configured"):
        restored(run_dir, epochs=2)
    assert restored(run_dir, epochs=3)[0] == 3  # equal: nothing left to train, allowed


def test_fit_refuses_before_training_and_writes_no_results(run_dir):
    x, y = _data()
    cfg = C.load(Tiny(), sets=["train.epochs=2"])
    run = runs.start("demo", cfg, run_dir=run_dir)
    history = (run_dir / "history.csv").read_text()
    with pytest.raises(checkpoints.CheckpointError, match="past the 2 epochs"):
        training.fit(_model(), run, x, y, cfg.train, verbose=0)
    assert (run_dir / "history.csv").read_text() == history
    assert not (run_dir / "metrics.json").exists()


class _Stub:
    """A model whose save() writes a small zip archive: checkpoint bookkeeping without Keras."""

    def save(self, path):
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("weights", os.path.basename(path))


def test_pruning_orders_by_epoch_number_past_9999(tmp_path):
    folder = tmp_path / "checkpoints" / "ck"
    for epoch in (9998, 9999, 10000, 10001):
        checkpoints.save(_Stub(), str(folder), epoch, keep=2)
    # as text, "epoch-9999.keras" sorts after "epoch-10001.keras" and would be kept
    assert sorted(os.listdir(folder)) == ["epoch-10000.keras", "epoch-10001.keras", "latest.json"]
    state = json.loads((folder / "latest.json").read_text())
    assert [e["epoch"] for e in state["checkpoints"]] == [10000, 10001]
    (folder / "latest.json").unlink()
    with pytest.warns(checkpoints.CheckpointWarning):
        assert checkpoints.latest(str(tmp_path), "ck") == (10001, str(folder / "epoch-10001.keras"))


def test_a_killed_writes_temporaries_are_removed_when_the_run_continues(run_dir):
    left = [ck(run_dir) / ".epoch-0004.keras.k2j3h4.tmp.keras", run_dir / ".history.csv.a8x.tmp.csv",
            ck(run_dir) / ".latest.json.zz9.tmp.json"]
    for path in left:
        path.write_bytes(b"half a file")
    mine = run_dir / "notes.tmp"  # not a bwkeras temporary: kept
    mine.write_text("mine")
    restored(run_dir)
    assert not any(p.exists() for p in left) and mine.exists()


def test_a_damaged_run_is_refused_on_every_rank_alike(run_dir, monkeypatch):
    """runs.start checks on the chief inside dist.agreed: a refusal reaches every rank
    (see test_runs.py for the two-rank proof of agreed itself)."""
    from bwkeras import distributed as dist

    calls = []
    real = dist.agreed
    monkeypatch.setattr(dist, "agreed", lambda fn, **kw: calls.append(kw["name"]) or real(fn, **kw))
    for e in (1, 2, 3):
        _empty(ck(run_dir, e))
    with pytest.raises(checkpoints.CheckpointError):
        runs.start("demo", Tiny(), run_dir=run_dir)
    assert calls == ["bwkeras.runs.start"]


def test_history_of_an_index_rebuilt_run_continues_from_the_restored_epoch(run_dir):
    (ck(run_dir) / "latest.json").unlink()
    _flip(ck(run_dir, 3))
    x, y = _data()
    cfg = C.load(Tiny(), sets=["train.epochs=4"])
    run = runs.start("demo", cfg, run_dir=run_dir)
    with pytest.warns(checkpoints.CheckpointWarning):
        history = training.fit(_model(), run, x, y, cfg.train, verbose=0)
    assert history.epoch == [2, 3]
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert [r["epoch"] for r in rows] == ["1", "2", "3", "4"]
    assert json.loads((ck(run_dir) / "latest.json").read_text())["epoch"] == 4
