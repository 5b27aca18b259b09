"""The mlp and sunspots recipes with model.model_parallel = 2 under horovodrun -np 2 (one
model over two ranks), with hard timeouts: the run folder is complete, its whole-model
files load in one process and predict what the run reported, and the run resumes.
Bad input (no launcher, widths k does not divide, elastic) exits 2 with one message."""
import json
import os

import numpy as np
import pytest

import keras
import test_recipes as base
from bwkeras import datasets, models  # noqa: F401  (models: the classes the files name)
from launch import check, run_file

KERAS2 = keras.__version__.startswith("2.")
K2 = "model.model_parallel=2"


def run_recipe(tmp_path, name, *args):
    return check(run_file(tmp_path, os.path.join(base.RECIPES_DIR, f"{name}.py"), np=2,
                          timeout=300, args=args))


def mlp_test_scores(path):
    """(cross-entropy, accuracy) of PATH's model on the recipe's test images, in one process."""
    model = keras.models.load_model(path)
    assert model.model_parallel == 1  # an ordinary one-process model
    x, y = datasets.digits()
    test = np.random.default_rng(0).permutation(len(y))[:int(round(0.2 * len(y)))]
    p = model.predict(x[test], verbose=0)
    loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(y[test], p)))
    return loss, float(np.mean(p.argmax(1) == y[test]))


@pytest.mark.launcher
@pytest.mark.timeout(600)
@pytest.mark.skipif(KERAS2, reason="model parallelism needs Keras 3")
def test_mlp_model_parallel_two_ranks_saves_loads_and_resumes(tmp_path):
    runs_dir = tmp_path / "runs"
    tiny = ("--config", base.tiny("mlp"))
    proc = run_recipe(tmp_path, "mlp", *tiny, "--runs-dir", runs_dir, "--set", K2)
    path, metrics = base.check_run_dir(runs_dir, "mlp", [K2])
    assert proc.stdout.count("Outputs in") == 1
    assert metrics["ranks"] == 2 and metrics["model_parallel"] == 2
    (row,) = metrics["results"]
    assert row["parameters"] == 64 * 8 + 8 + 8 * 10 + 10  # the whole model's, not a shard's
    # the two ranks hold different shards of one replica: agreement is per shard
    replicas = json.load(open(os.path.join(path, "replicas.json")))
    assert replicas["agree"] and replicas["model_parallel"] == 2 and replicas["shards"] == [0, 1]
    assert replicas["digests"][0] != replicas["digests"][1]
    assert json.load(open(os.path.join(path, "checkpoints", "latest.json")))["epoch"] == 2
    # the whole model, in one process, scores what the run reported
    loss, accuracy = mlp_test_scores(os.path.join(path, "model.keras"))
    assert loss == pytest.approx(row["test loss"], abs=1e-5)
    assert accuracy == pytest.approx(row["test accuracy"], abs=1e-6)
    # an epoch checkpoint is such a file too
    epoch2 = mlp_test_scores(os.path.join(path, "checkpoints", "epoch-0002.keras"))
    assert epoch2 == pytest.approx((loss, accuracy), abs=1e-5)

    # --resume: each rank restores its shard of epoch 2's checkpoint and trains epoch 3
    proc = run_recipe(tmp_path, "mlp", "--resume", path, "--set", "train.epochs=3")
    assert proc.stdout.count("Epoch 3/3") == 1 and "Epoch 1/3" not in proc.stdout
    rows = open(os.path.join(path, "history.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2", "3"]
    assert json.load(open(os.path.join(path, "checkpoints", "latest.json")))["epoch"] == 3
    (resumed,) = json.load(open(os.path.join(path, "metrics.json")))["results"]
    loss3, accuracy3 = mlp_test_scores(os.path.join(path, "model.keras"))
    assert loss3 == pytest.approx(resumed["test loss"], abs=1e-5)
    assert accuracy3 == pytest.approx(resumed["test accuracy"], abs=1e-6)
    # it went on from epoch 2's weights: one more epoch of the same descent, not a restart
    assert loss3 < loss
    assert json.load(open(os.path.join(path, "replicas.json")))["agree"]
    assert os.listdir(runs_dir) == [os.path.basename(path)]


@pytest.mark.launcher
@pytest.mark.timeout(600)
@pytest.mark.skipif(KERAS2, reason="model parallelism needs Keras 3")
def test_mlp_model_parallel_stops_mid_epoch_and_resumes_there(tmp_path):
    # a stop request already pending: the ranks agree at step 5, every rank gathers the
    # model, rank 0 writes partial.keras, and the job exits 'preempted'
    run_dir = tmp_path / "run"
    stop = tmp_path / "stop"
    stop.touch()
    script = os.path.join(base.RECIPES_DIR, "mlp.py")
    args = ("--config", base.tiny("mlp"), "--run-dir", run_dir, "--set", K2,
            "--set", "train.commit_steps=5")
    proc = run_file(tmp_path, script, np=2, timeout=300, args=args,
                    env={"BWKERAS_STOP_FILE": str(stop)})
    assert proc.returncode != 0
    partial = json.load(open(run_dir / "checkpoints" / "partial.json"))
    assert (partial["epoch"], partial["step"]) == (0, 5)
    assert not (run_dir / "history.csv").exists()
    # the requeued job's command line again: it goes on from step 5 of epoch 1
    stop.unlink()
    proc = check(run_file(tmp_path, script, np=2, timeout=300, args=args))
    assert "18/18" in proc.stdout  # the 18 steps of 64 left of epoch 1's 23
    rows = open(run_dir / "history.csv").read().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]
    assert not (run_dir / "checkpoints" / "partial.json").exists()
    (row,) = json.load(open(run_dir / "metrics.json"))["results"]
    loss, accuracy = mlp_test_scores(str(run_dir / "model.keras"))
    assert loss == pytest.approx(row["test loss"], abs=1e-5)


@pytest.mark.launcher
@pytest.mark.timeout(600)
@pytest.mark.skipif(KERAS2, reason="model parallelism needs Keras 3")
def test_sunspots_model_parallel_two_ranks(tmp_path):
    import bwkeras.timeseries as ts

    runs_dir = tmp_path / "runs"
    sets = [K2, "model.cells=[gru]"]
    run_recipe(tmp_path, "sunspots", "--config", base.tiny("sunspots"), "--runs-dir", runs_dir,
               *[a for s in sets for a in ("--set", s)])
    path, metrics = base.check_run_dir(runs_dir, "sunspots", sets)
    assert metrics["model_parallel"] == 2
    assert json.load(open(os.path.join(path, "replicas-gru.json")))["agree"]
    rmse = {r["model"]: r["test RMSE"] for r in metrics["results"]}
    # the GRU file, in one process, forecasts the test years with the RMSE the run reported
    data = ts.supervised_split(datasets.sunspots(), 9, scale="standard", validation=0.15,
                               test=0.15)
    model = keras.models.load_model(os.path.join(path, "model-gru.keras"))
    assert model.model_parallel == 1
    pred = data.scaler.inverse_transform(model.predict(data.x_test, verbose=0))[:, 0]
    truth = data.scaler.inverse_transform(data.y_test)[:, 0]
    assert float(np.sqrt(np.mean((pred - truth) ** 2))) == pytest.approx(rmse["gru"], rel=1e-4)


# ---- bad input: one message, exit 2, before TensorFlow trains anything ----------------

@pytest.mark.parametrize("name, sets, message", [
    ("mlp", [K2], "model.model_parallel: model_parallel=2 needs 2 ranks"),
    ("mlp", ["model.model_parallel=3"], "model.hidden_units[0]=64 must be divisible by "
                                        "model.model_parallel=3"),
    ("mlp", ["model.model_parallel=0"], "model.model_parallel must be >= 1, got 0"),
    ("sunspots", ["model.model_parallel=3"], "model.units=32 must be divisible by "
                                             "model.model_parallel=3"),
    ("sunspots", [K2, "train.elastic=true"], "train.elastic cannot go with model.model_parallel=2"),
])
def test_bad_model_parallel_exits_2_with_one_message(tmp_path, capsys, name, sets, message):
    with pytest.raises(SystemExit) as exc:
        base.load_recipe(name).main(["--runs-dir", str(tmp_path / "runs"),
                                     *[a for s in sets for a in ("--set", s)]])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_print_config_shows_the_key():
    for name in ("mlp", "sunspots"):
        assert base.load_recipe(name).CONFIG().model.model_parallel == 1
