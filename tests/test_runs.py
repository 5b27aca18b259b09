"""Run directories, atomic files, checkpoints and resume (np=1 and np=2)."""
import csv
import dataclasses
import hashlib
import json
import os

import keras
import numpy as np
import pytest
import yaml

from bwkeras import atomic, callbacks, report, runs, training
from bwkeras import config as C
from launch import check, read_outputs, run_script


@dataclasses.dataclass
class Tiny(training.RecipeConfig):
    train: training.TrainConfig = dataclasses.field(
        default_factory=lambda: training.TrainConfig(epochs=2, batch_size=8))
    run: training.RunConfig = dataclasses.field(
        default_factory=lambda: training.RunConfig(tensorboard=False))


def test_markdown_table():
    table = report.markdown_table([{"model": "AR(9)", "rmse": 21.123456}, {"model": "a|b", "rmse": 3}])
    assert table.splitlines() == ["| model | rmse |", "|---|---|", "| AR(9) | 21.12 |",
                                  "| a\\|b | 3 |"]


# ---- run directories -------------------------------------------------------------------

def test_start_creates_new_directory_never_reusing_one(tmp_path):
    cfg = C.load(Tiny(), sets=["train.epochs=3"])
    a = runs.start("demo", cfg, runs_dir=tmp_path, timestamp="20250101-000000")
    b = runs.start("demo", cfg, runs_dir=tmp_path, timestamp="20250101-000000")
    assert os.path.basename(a.path) == "demo-20250101-000000"
    assert os.path.basename(b.path) == "demo-20250101-000000-2"
    saved = yaml.safe_load(open(os.path.join(a.path, "config.yaml")))
    assert saved["train"]["epochs"] == 3
    # a file already in the old directory is untouched by the second start
    atomic.write_text(os.path.join(a.path, "note.txt"), "keep me")
    runs.start("demo", cfg, runs_dir=tmp_path, timestamp="20250101-000000")
    assert open(os.path.join(a.path, "note.txt")).read() == "keep me"
    with pytest.raises(ValueError, match="recipe name"):
        runs.start("../evil", cfg, runs_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="no such run directory"):
        runs.start("demo", cfg, resume=tmp_path / "missing")


def test_history_metrics_and_report(tmp_path):
    run = runs.start("demo", Tiny(), runs_dir=tmp_path)
    run.write_metrics({"rmse": 1.5})
    run.write_history({"loss": [3.0, 2.0], "val_loss": [3.5, 2.5]})
    plot = run.plot_path("loss")
    atomic.write_bytes(plot, b"\x89PNG fake")
    path = run.write_report("Demo", tables=[("Results", [{"model": "m", "rmse": 1.5}])],
                              sections=[("Notes", "text")], plots=[plot])
    text = open(path).read()
    assert "| model | rmse |" in text and "| m | 1.5 |" in text
    assert "![loss](plots/loss.png)" in text
    assert os.path.exists(os.path.join(run.path, "plots", "loss.png"))
    rows = list(csv.DictReader(open(run.file("history.csv"))))
    assert [r["epoch"] for r in rows] == ["1", "2"] and rows[1]["val_loss"] == "2.5"
    assert json.load(open(run.file("metrics.json"))) == {"rmse": 1.5}


# ---- checkpoints -----------------------------------------------------------------------

def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def _data(n=64):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]])).astype("float32")


def test_checkpoint_each_epoch_and_keep(tmp_path):
    x, y = _data()
    model = _model()
    cb = callbacks.Checkpoint(str(tmp_path / "ck"), keep=2)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb], shuffle=False)
    names = sorted(os.listdir(tmp_path / "ck"))
    assert names == ["epoch-0002.keras", "epoch-0003.keras", "latest.json"]
    state = json.load(open(tmp_path / "ck" / "latest.json"))
    # the index records each kept file's SHA-256 (hashlib over the bytes on disk)
    digest = {n: hashlib.sha256((tmp_path / "ck" / n).read_bytes()).hexdigest()
              for n in names[:2]}
    # ... and the learning rate it was trained at (Keras 2 does not keep it in the file)
    lr = float(np.float32(0.05))
    assert state == {"epoch": 3, "file": "epoch-0003.keras", "sha256": digest["epoch-0003.keras"],
                     "learning_rate": lr,
                     "checkpoints": [{"epoch": e, "file": f"epoch-000{e}.keras", "learning_rate": lr,
                                      "sha256": digest[f"epoch-000{e}.keras"]} for e in (2, 3)]}
    loaded = keras.models.load_model(tmp_path / "ck" / "epoch-0003.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="keep must be an integer >= 1, got 0"):
        callbacks.Checkpoint(str(tmp_path), keep=0)


def test_failed_epoch_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    x, y = _data()
    model = _model()
    directory = tmp_path / "checkpoints"
    cb = callbacks.Checkpoint(str(directory), keep=5)
    cb.set_model(model)
    cb.on_epoch_end(0, {"loss": 1.0})
    good = (directory / "epoch-0001.keras").read_bytes()

    cb.on_epoch_end(1, {"loss": float("nan")})       # diverged: nothing written
    assert cb.skipped == [2]
    assert sorted(os.listdir(directory)) == ["epoch-0001.keras", "latest.json"]

    def broken_save(path, *a, **k):                    # crash half-way through the write
        with open(path, "wb") as fh:
            fh.write(b"PK\x03\x04 partial")
        raise OSError("no space left on device")

    monkeypatch.setattr(model, "save", broken_save)
    with pytest.raises(OSError, match="no space left"):
        cb.on_epoch_end(2, {"loss": 0.5})
    assert sorted(os.listdir(directory)) == ["epoch-0001.keras", "latest.json"]
    assert json.load(open(directory / "latest.json"))["epoch"] == 1
    assert (directory / "epoch-0001.keras").read_bytes() == good


def test_restore_loads_weights_optimizer_and_epoch(tmp_path):
    x, y = _data()
    cfg = Tiny()
    run = runs.start("demo", cfg, runs_dir=tmp_path)
    model = _model()
    assert training.prepare(model, run) == 0
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False,
              callbacks=training.callbacks(run))
    resumed = runs.start("demo", cfg, resume=run.path)
    fresh = _model(seed=1)
    assert training.prepare(fresh, resumed) == 2
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    opt_vars = lambda m: [np.asarray(v) for v in m.optimizer.variables]  # noqa: E731
    for a, b in zip(opt_vars(model), opt_vars(fresh)):
        np.testing.assert_array_equal(a, b)
    assert int(np.asarray(fresh.optimizer.iterations)) == 2 * 4

    empty = runs.start("demo", cfg, runs_dir=tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no checkpoints/latest.json"):
        training.prepare(_model(), runs.start("demo", cfg, resume=empty.path))


# ---- resume equals an uninterrupted run, single process and two ranks ------------------

RESUME_JOB = """
import dataclasses, json, os, sys
import numpy as np, keras
from bwkeras import runs, training
from bwkeras import distributed as dist
from recipes import args as recipe_args

@dataclasses.dataclass
class Tiny(training.RecipeConfig):
    train: training.TrainConfig = dataclasses.field(
        default_factory=lambda: training.TrainConfig(epochs=2, batch_size=8))
    run: training.RunConfig = dataclasses.field(
        default_factory=lambda: training.RunConfig(tensorboard=False))

cfg, args = recipe_args.parse(Tiny(), sys.argv[1:])
dist.init()
rng = np.random.default_rng(0)
x = rng.normal(size=(96, 3)).astype("float32")
y = np.tanh(x @ np.array([[1.0], [-2.0], [0.5]], dtype="float32"))
keras.utils.set_random_seed(1000 + dist.rank())   # ranks start unequal; rank 0's state is broadcast
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"),
                          keras.layers.Dense(1)])
opt = dist.DistributedOptimizer(keras.optimizers.Adam(dist.scale_learning_rate(cfg.train.learning_rate)))
model.compile(optimizer=opt, loss="mse")
run = runs.start("resume", cfg, runs_dir=args.runs_dir, resume=args.resume)
start = training.prepare(model, run)
xs, ys = dist.shard((x, y))
history = model.fit(xs, ys, epochs=cfg.train.epochs, initial_epoch=start, batch_size=cfg.train.batch_size,
                    shuffle=False, verbose=0, callbacks=training.callbacks(run))
json.dump({"path": run.path, "start": start, "weights": [w.tolist() for w in model.get_weights()],
           "iterations": int(np.asarray(model.optimizer.iterations))},
          open(os.path.join(os.environ["OUT_DIR"], f"rank{dist.rank()}.json"), "w"))
"""


def _resume_case(tmp_path, np_, launcher):
    def go(sub, *args):
        d = tmp_path / sub
        d.mkdir()
        proc = check(run_script(d, RESUME_JOB, np=np_, launcher=launcher, args=args, timeout=240))
        return read_outputs(proc, np_)

    runs_dir = str(tmp_path / "runs")
    full = go("full", "--runs-dir", runs_dir, "--set", "train.epochs=4")
    half = go("half", "--runs-dir", runs_dir, "--set", "train.epochs=2")
    rest = go("rest", "--resume", half[0]["path"], "--set", "train.epochs=4")
    assert rest[0]["start"] == 2 and all(r["path"] == half[0]["path"] for r in rest)
    assert full[0]["path"] != half[0]["path"]
    steps = 4 * (96 // np_ // 8)
    assert full[0]["iterations"] == rest[0]["iterations"] == steps
    # Same data order, same state after the restore and the same float32 operations in the
    # same order: the weights agree to float32 round-off (1e-6 covers reordering in oneDNN
    # kernels between processes; a lost optimizer state changes them by ~1e-2).
    for r in range(np_):
        for a, b in zip(full[r]["weights"], rest[r]["weights"]):
            np.testing.assert_allclose(np.array(b), np.array(a), rtol=1e-5, atol=1e-6)
    hist = list(csv.DictReader(open(os.path.join(half[0]["path"], "history.csv"))))
    assert [h["epoch"] for h in hist] == ["1", "2", "3", "4"]
    saved = yaml.safe_load(open(os.path.join(half[0]["path"], "config.yaml")))
    assert saved["train"]["epochs"] == 4
    ck = sorted(os.listdir(os.path.join(half[0]["path"], "checkpoints")))
    assert ck == ["epoch-0003.keras", "epoch-0004.keras", "latest.json"]
    # only the chief created folders: the full run and the resumed one, none per rank
    assert len(os.listdir(runs_dir)) == 2


def test_resume_matches_uninterrupted_run_single_process(tmp_path):
    _resume_case(tmp_path, 1, "none")


@pytest.mark.launcher
def test_resume_matches_uninterrupted_run_two_ranks(tmp_path):
    _resume_case(tmp_path, 2, "horovodrun")


# ---- the training sequence ---------------------------------------------------------------

def test_callbacks_come_in_the_one_working_order(tmp_path):
    from bwkeras import distributed as dist

    run = runs.start("demo", Tiny(), runs_dir=tmp_path)
    mine = keras.callbacks.Callback()
    order = [type(c).__name__ for c in training.callbacks(run, warmup_epochs=1, extra=[mine])]
    assert order == ["BroadcastInitialState", "MetricAverage", "LearningRateWarmup", "Callback",
                     "HistoryCSV", "Checkpoint", "ReplicaDigest", "StopOnSignal"]
    on = runs.start("demo", C.load(Tiny(), sets=["run.tensorboard=true",
                                                 "run.checkpoint_keep=4"]), runs_dir=tmp_path)
    cbs = training.callbacks(on, tag="lstm")
    assert [type(c).__name__ for c in cbs][2:] == [
        "HistoryCSV", "Checkpoint", "TensorBoard", "ReplicaDigest", "StopOnSignal"]
    assert cbs[3].keep == 4 and cbs[3].directory == os.path.join(on.path, "checkpoints", "lstm")
    assert cbs[2].path == os.path.join(on.path, "history-lstm.csv")
    assert isinstance(cbs[-1], dist.StopOnSignal)


def test_fit_trains_records_and_resumes(tmp_path):
    x, y = _data()
    cfg = C.load(Tiny(), sets=["train.epochs=2"])
    run = runs.start("demo", cfg, runs_dir=tmp_path)
    model = keras.Sequential([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")  # no weights yet: fit builds
    history = training.fit(model, run, x, y, cfg.train, verbose=0)
    assert history.epoch == [0, 1] and len(run.read_history()["loss"]) == 2
    longer = C.load(cfg, sets=["train.epochs=3"])
    again = runs.start("demo", longer, resume=run.path)
    fresh = keras.Sequential([keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    fresh.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    history = training.fit(fresh, again, x, y, longer.train, verbose=0)
    assert again.initial_epoch == 2 and history.epoch == [2]
    assert [r["epoch"] for r in csv.DictReader(open(run.file("history.csv")))] == ["1", "2", "3"]


def test_resume_of_a_folder_that_is_not_a_run_writes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        runs.start("demo", Tiny(), resume=tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


START_FAILS_JOB = """
import json, os, sys
from bwkeras import distributed as dist, runs
dist.init()
try:
    runs.start("demo", None, runs_dir=sys.argv[1])
    outcome = "started"
except OSError as exc:
    outcome = f"{type(exc).__name__}: {exc}"
json.dump({"outcome": outcome}, open(os.path.join(os.environ["OUT_DIR"], f"rank{dist.rank()}.json"), "w"))
"""


@pytest.mark.launcher
def test_a_run_folder_the_chief_cannot_make_fails_every_rank(tmp_path):
    blocker = tmp_path / "runs"
    blocker.write_text("a file where the runs folder should be")
    proc = check(run_script(tmp_path, START_FAILS_JOB, np=2, args=(str(blocker),), timeout=120))
    rank0, rank1 = (r["outcome"] for r in read_outputs(proc, 2))
    assert rank0.startswith("NotADirectoryError") and "is not a directory" in rank0
    assert rank1.startswith("NotADirectoryError: rank 0 of 2 failed") and str(blocker) in rank1
