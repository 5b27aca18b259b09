"""Run directories, atomic files, checkpoints and resume (np=1 and np=2)."""
import csv
import dataclasses
import json
import os

import keras
import numpy as np
import pytest
import yaml

from bwkeras import config as C
from bwkeras import runs
from launch import check, read_outputs, run_script


@dataclasses.dataclass
class Tiny(C.Config):
    train: C.TrainConfig = dataclasses.field(
        default_factory=lambda: C.TrainConfig(epochs=2, batch_size=8, tensorboard=False))


# ---- atomic writes ---------------------------------------------------------------------

def test_atomic_writers_round_trip(tmp_path):
    runs.atomic_write_json(tmp_path / "m.json", {"r": np.float32(0.5), "n": np.int64(3),
                                                 "bad": float("nan"), "a": np.arange(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"r": 0.5, "n": 3, "bad": None,
                                                             "a": [0, 1, 2]}
    runs.atomic_write_csv(tmp_path / "h.csv", [{"epoch": 1, "loss": 2.0},
                                               {"epoch": 2, "loss": 1.0, "val_loss": 1.5}])
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert rows == [{"epoch": "1", "loss": "2.0", "val_loss": ""},
                    {"epoch": "2", "loss": "1.0", "val_loss": "1.5"}]
    runs.atomic_write_yaml(tmp_path / "c.yaml", {"a": {"b": 1}})
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == {"a": {"b": 1}}
    mode = os.stat(tmp_path / "c.yaml").st_mode & 0o777
    assert mode & 0o044, f"files must be readable by others as with open(), got {oct(mode)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "h.csv", "m.json"]


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    runs.atomic_write_json(target, {"good": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with runs.atomic_path(target) as tmp:
            with open(tmp, "w") as fh:
                fh.write('{"half": ')
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with pytest.raises(TypeError, match="cannot write object"):
        runs.atomic_write_json(target, {"x": object()})
    assert json.loads(target.read_text()) == {"good": 1}


def test_markdown_table():
    table = runs.markdown_table([{"model": "AR(9)", "rmse": 21.123456}, {"model": "a|b", "rmse": 3}])
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
    runs.atomic_write_text(os.path.join(a.path, "note.txt"), "keep me")
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
    runs.atomic_write_bytes(plot, b"\x89PNG fake")
    report = run.write_report("Demo", tables=[("Results", [{"model": "m", "rmse": 1.5}])],
                              sections=[("Notes", "text")], plots=[plot])
    text = open(report).read()
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
    cb = runs.Checkpoint(str(tmp_path / "ck"), keep=2)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[cb], shuffle=False)
    names = sorted(os.listdir(tmp_path / "ck"))
    assert names == ["epoch-0002.keras", "epoch-0003.keras", "latest.json"]
    state = json.load(open(tmp_path / "ck" / "latest.json"))
    assert state == {"epoch": 3, "file": "epoch-0003.keras"}
    loaded = keras.models.load_model(tmp_path / "ck" / "epoch-0003.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="keep must be an integer >= 1, got 0"):
        runs.Checkpoint(str(tmp_path), keep=0)


def test_failed_epoch_never_replaces_a_good_checkpoint(tmp_path, monkeypatch):
    x, y = _data()
    model = _model()
    directory = tmp_path / "checkpoints"
    cb = runs.Checkpoint(str(directory), keep=5)
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
    assert run.restore(model) == 0
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, shuffle=False, callbacks=run.callbacks())
    resumed = runs.start("demo", cfg, resume=run.path)
    fresh = _model(seed=1)
    assert resumed.restore(fresh) == 2
    for a, b in zip(model.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    opt_vars = lambda m: [np.asarray(v) for v in m.optimizer.variables]  # noqa: E731
    for a, b in zip(opt_vars(model), opt_vars(fresh)):
        np.testing.assert_array_equal(a, b)
    assert int(np.asarray(fresh.optimizer.iterations)) == 2 * 4

    empty = runs.start("demo", cfg, runs_dir=tmp_path / "other")
    with pytest.raises(FileNotFoundError, match="no checkpoints/latest.json"):
        runs.start("demo", cfg, resume=empty.path).restore(_model())


# ---- resume equals an uninterrupted run, single process and two ranks ------------------

RESUME_JOB = """
import dataclasses, json, os, sys
import numpy as np, keras
from bwkeras import config as C, runs
from bwkeras import distributed as dist

@dataclasses.dataclass
class Tiny(C.Config):
    train: C.TrainConfig = dataclasses.field(
        default_factory=lambda: C.TrainConfig(epochs=2, batch_size=8, tensorboard=False))

cfg, args = C.parse_args(Tiny(), sys.argv[1:])
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
start = run.restore(model)
xs, ys = dist.shard((x, y))
history = model.fit(xs, ys, epochs=cfg.train.epochs, initial_epoch=start, batch_size=cfg.train.batch_size,
                    shuffle=False, verbose=0, callbacks=dist.callbacks() + run.callbacks())
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
