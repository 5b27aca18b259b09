"""The large-batch study: its learning-rate arithmetic, its config errors, and a tiny run's
table (one row per batch and rule, gaps and times-to-target that follow from the numbers)."""
import csv
import json
import math
import os

import pytest

from bwkeras import distributed as dist
from bwkeras import training
from launch import run_file
from test_recipes import RECIPES_DIR, load_recipe, tiny

lb = load_recipe("large_batch")


# ---- learning-rate rules, batches, targets -----------------------------------------------

@pytest.mark.parametrize("rule, batch, expected", [
    ("none", 512, 0.1),
    ("linear", 512, 0.1 * 16),            # k = 512 / 32
    ("sqrt", 512, 0.1 * 4),
    ("linear", 32, 0.1),                  # at the base batch every rule is the base rate
    ("sqrt", 32, 0.1),
    ("linear", 16, 0.05),                 # a smaller batch scales the rate down
    ("sqrt", 8, 0.05),
    ("linear", 1438, 0.1 * 1438 / 32),
    ("sqrt", 1438, 0.1 * math.sqrt(1438 / 32)),
])
def test_study_learning_rate(rule, batch, expected):
    assert lb.study_learning_rate(0.1, rule, batch, 32) == pytest.approx(expected, rel=1e-12)


def test_study_learning_rate_rejects_unknown_rule_and_bad_rate():
    with pytest.raises(ValueError, match="'cubic' is not one of"):
        lb.study_learning_rate(0.1, "cubic", 64, 32)
    with pytest.raises(ValueError, match="positive finite"):
        lb.study_learning_rate(0.0, "linear", 64, 32)


def test_per_rank_batch_and_its_errors():
    assert dist.per_rank_batch(128, 1) == 128
    assert dist.per_rank_batch(128, 4) == 32
    assert dist.per_rank_batch(2, 2) == 1
    with pytest.raises(ValueError, match=r"global batch 33 does not split evenly over 2 ranks; "
                                         r"use a multiple of 2"):
        dist.per_rank_batch(33, 2)
    with pytest.raises(ValueError, match=r"global batch 3 is smaller than the number of ranks \(4\)"):
        dist.per_rank_batch(3, 4)
    assert lb.check_batches([32, 1438], 2, 1438) == [16, 719]
    with pytest.raises(ValueError, match="global batch 2000 is larger than the 1438 training images"):
        lb.check_batches([32, 2000], 1, 1438)


def test_first_reached():
    acc, secs = [0.2, 0.85, 0.9, 0.95], [1.0, 2.0, 3.5, 4.0]
    assert training.first_reached(acc, secs, 0.9) == (3, 3.5)      # >= counts
    assert training.first_reached(acc, secs, 0.1) == (1, 1.0)
    assert training.first_reached(acc, secs, 0.96) == (None, None)
    assert training.first_reached([math.nan, 0.5], [1.0, 2.0], 0.5) == (2, 2.0)
    assert training.first_reached([], [], 0.5) == (None, None)


def test_warmup_ramps_from_the_base_rate_only_when_the_rule_raised_it():
    assert lb.warmup(0.0, 1.6, 0.1) == []
    assert lb.warmup(2.0, 0.1, 0.1) == []         # rule none: nothing to ramp
    assert lb.warmup(2.0, 0.05, 0.1) == []        # a batch below the base: the rate went down
    (cb,) = lb.warmup(2.0, 1.6, 0.1)
    assert isinstance(cb, dist.LearningRateWarmup)
    assert cb.warmup_epochs == 2.0 and cb.factor == pytest.approx(16.0)


# ---- bad configs ----------------------------------------------------------------------------

@pytest.mark.parametrize("setting, message", [
    ("study.batch_sizes=[32,0]", "study.batch_sizes must hold positive integers, got 0"),
    ("study.batch_sizes=[]", "study.batch_sizes must list at least one global batch size"),
    ("study.batch_sizes=[32,32]", "study.batch_sizes lists a batch size twice"),
    ("study.batch_sizes=[32,big]", "key study.batch_sizes expects list of int"),
    ("study.lr_rules=[none,cubic]",
     "study.lr_rules: 'cubic' is not a learning-rate rule; expected one of linear, sqrt, none"),
    ("study.lr_rules=[]", "study.lr_rules must list at least one rule"),
    ("study.base_batch=0", "study.base_batch must be a positive integer, got 0"),
    ("study.target_accuracy=0", r"study.target_accuracy must be in (0, 1], got 0.0"),
    ("study.target_accuracy=1.5", r"study.target_accuracy must be in (0, 1], got 1.5"),
    ("train.learning_rate=-1", "train.learning_rate must be > 0.0"),
    ("train.warmup_epochs=-1", "train.warmup_epochs must be >= 0.0"),
    ("train.batch_size=64", "unknown config key 'train.batch_size'"),
    ("data.test=1.0", "data.test must be a fraction between 0 and 1 (exclusive), got 1.0"),
])
def test_bad_config_exits_with_its_message(setting, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        lb.main(["--set", setting, "--runs-dir", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_target_accuracy_one_is_allowed(capsys):
    with pytest.raises(SystemExit) as exit_:
        lb.main(["--set", "study.target_accuracy=1", "--print-config"])
    assert exit_.value.code == 0
    assert "target_accuracy: 1.0" in capsys.readouterr().out


def test_batch_larger_than_the_training_set_stops_before_a_run_folder(tmp_path):
    with pytest.raises(SystemExit, match="large_batch: study.batch_sizes: global batch 5000 is "
                                         "larger than the 1438 training images"):
        lb.main(["--set", "study.batch_sizes=[32,5000]", "--runs-dir", str(tmp_path / "runs")])
    assert not (tmp_path / "runs").exists()


# ---- a tiny run -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    runs_dir = tmp_path_factory.mktemp("large_batch") / "runs"
    run = lb.main(["--config", tiny("large_batch"), "--runs-dir", str(runs_dir)])
    return run, json.load(open(os.path.join(run.path, "metrics.json")))


def test_tiny_run_has_one_row_per_batch_and_rule(tiny_run):
    run, metrics = tiny_run
    rows = metrics["results"]
    assert [(r["global batch"], r["lr rule"]) for r in rows] == [
        (64, "none"), (64, "linear"), (256, "none"), (256, "linear")]
    assert metrics["ranks"] == 1 and metrics["n_train"] + metrics["n_test"] == 1797
    for r in rows:
        assert r["per-rank batch"] == r["global batch"]
        assert r["learning rate"] == pytest.approx(
            lb.study_learning_rate(0.1, r["lr rule"], r["global batch"], 32))
        assert r["updates"] == 2 * math.ceil(metrics["n_train"] / r["global batch"])
        assert 0.0 <= r["test accuracy"] <= 1.0 and 0.0 <= r["train accuracy"] <= 1.0
    with open(os.path.join(run.path, "results.csv"), newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [(int(r["global batch"]), r["lr rule"]) for r in table] == [
        (r["global batch"], r["lr rule"]) for r in rows]


def test_tiny_run_gaps_are_train_minus_test(tiny_run):
    _, metrics = tiny_run
    for r in metrics["results"]:
        assert r["accuracy gap"] == pytest.approx(r["train accuracy"] - r["test accuracy"], abs=1e-12)
        assert r["loss gap"] == pytest.approx(r["train loss"] - r["test loss"], abs=1e-12)


def test_tiny_run_time_to_target_follows_the_history(tiny_run):
    run, metrics = tiny_run
    target = metrics["target_accuracy"]
    assert target == 0.4
    for r in metrics["results"]:
        history = run.read_history(tag=f"batch{r['global batch']}-{r['lr rule']}")
        accuracy, seconds = history["val_accuracy"], history["seconds"]
        assert len(accuracy) == len(seconds) == 2
        assert 0 < seconds[0] < seconds[1] == pytest.approx(r["train seconds"])
        assert r["wall seconds"] >= r["train seconds"]
        # the final evaluation sees the last epoch's weights and the same test images
        assert r["test accuracy"] == pytest.approx(accuracy[-1], abs=1e-6)
        reached = [e for e, a in enumerate(accuracy, start=1) if a >= target]
        if reached:
            assert r["epoch to target"] == reached[0]
            assert r["seconds to target"] == pytest.approx(seconds[reached[0] - 1])
        else:
            assert r["epoch to target"] is None and r["seconds to target"] is None
    report = open(os.path.join(run.path, "report.md")).read()
    assert ("not reached" in report) == any(r["epoch to target"] is None for r in metrics["results"])


def test_resume_continues_the_clock_and_starts_models_not_begun(tmp_path):
    runs_dir = tmp_path / "runs"
    one = ["--set", "study.lr_rules=[none]", "--set", "run.tensorboard=false"]
    first = lb.main(["--config", tiny("large_batch"), "--runs-dir", str(runs_dir), *one,
                     "--set", "study.batch_sizes=[256]", "--set", "train.epochs=1"])
    before = first.read_history(tag="batch256-none")["seconds"]
    again = lb.main(["--resume", first.path, "--set", "study.batch_sizes=[256,64]",
                     "--set", "train.epochs=2"])
    assert again.path == first.path and os.listdir(runs_dir) == [os.path.basename(first.path)]
    resumed = again.read_history(tag="batch256-none")["seconds"]
    assert resumed[0] == pytest.approx(before[0]) and resumed[1] > resumed[0]
    assert len(again.read_history(tag="batch64-none")["seconds"]) == 2   # began afresh
    rows = json.load(open(os.path.join(first.path, "metrics.json")))["results"]
    assert [(r["global batch"], r["lr rule"]) for r in rows] == [(256, "none"), (64, "none")]


# ---- under a launcher ------------------------------------------------------------------------

@pytest.mark.launcher
def test_global_batch_that_does_not_split_over_two_ranks_fails_clearly(tmp_path):
    runs_dir = tmp_path / "runs"
    proc = run_file(tmp_path, os.path.join(RECIPES_DIR, "large_batch.py"), np=2,
                    timeout=240, args=("--config", tiny("large_batch"), "--runs-dir", str(runs_dir),
                                       "--set", "study.batch_sizes=[64,63]"))
    assert proc.returncode != 0
    assert "global batch 63 does not split evenly over 2 ranks; use a multiple of 2" in proc.stderr
    assert not runs_dir.exists()
