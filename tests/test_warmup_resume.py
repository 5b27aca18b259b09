"""A recipe run stopped during its learning-rate warmup and resumed from its checkpoint
ends at the full rate, like an uninterrupted run (two ranks: the warmup ramps from lr / 2).
"""
import json
import os

import numpy as np
import pytest

from launch import REPO, check, run_file

pytestmark = pytest.mark.launcher
RECIPE = os.path.join(REPO, "recipes", "mlp.py")
TINY = os.path.join(REPO, "recipes", "configs", "mlp-tiny.yaml")


def checkpoint_lr(run_dir, epoch):
    import keras

    import bwkeras.models  # noqa: F401  (registers the MLP for loading)

    model = keras.models.load_model(os.path.join(run_dir, "checkpoints", f"epoch-{epoch:04d}.keras"))
    return float(np.asarray(model.optimizer.learning_rate))


def test_resumed_mid_warmup_ends_at_the_scaled_rate(tmp_path):
    runs = tmp_path / "runs"
    # The mlp recipe: Adam at 0.005 per process, scaled linearly to 0.01 on two ranks;
    # a warmup of 2 epochs, stopped after the first.
    check(run_file(tmp_path, RECIPE, np=2, timeout=240, args=(
        "--config", TINY, "--runs-dir", runs, "--set", "train.warmup_epochs=2",
        "--set", "train.epochs=1")))
    (name,) = os.listdir(runs)
    run_dir = runs / name
    part = checkpoint_lr(run_dir, 1)
    assert 0.005 < part < 0.0099, part      # saved mid-ramp: the resume starts from here
    check(run_file(tmp_path, RECIPE, np=2, timeout=240, args=(
        "--resume", run_dir, "--set", "train.epochs=3")))
    assert json.load(open(run_dir / "checkpoints" / "latest.json"))["epoch"] == 3
    # The ramp ended at the scaled rate, not at the part-warmed one it resumed with.
    assert checkpoint_lr(run_dir, 3) == pytest.approx(0.01, rel=1e-6)
