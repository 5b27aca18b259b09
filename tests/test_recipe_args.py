"""The recipes' shared command line (recipes/args.py) and the training sections."""
import dataclasses

import pytest
import yaml

from bwkeras import config as C
from bwkeras import training
from recipes import args as recipe_args
from test_config import Demo, write

# Stack-independent: recipe arguments and config parsing.
pytestmark = pytest.mark.one_stack


def test_parse_reads_files_sets_and_exits_2_on_bad_input(tmp_path, capsys):
    path = write(tmp_path, "train: {epochs: 2}\n")
    cfg, args = recipe_args.parse(Demo(), ["--config", str(path), "--set", "train.batch_size=5",
                                      "--runs-dir", str(tmp_path / "r")])
    assert (cfg.train.epochs, cfg.train.batch_size) == (2, 5)
    assert args.runs_dir == str(tmp_path / "r") and args.resume is None

    with pytest.raises(SystemExit) as exit_:
        recipe_args.parse(Demo(), ["--set", "train.nope=1"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "unknown config key 'train.nope'" in err and "train.epochs" in err
    assert "Traceback" not in err

    with pytest.raises(SystemExit) as exit_:
        recipe_args.parse(Demo(), ["--set", "train.epochs=2", "--print-config"])
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["epochs"] == 2


def fake_checkpoint(run_dir, epoch=1):
    """A checkpoint the index vouches for (a zip archive with its SHA-256 recorded):
    what --resume requires before it reads a run's config."""
    import json
    import zipfile

    from bwkeras import checkpoints

    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"epoch-{epoch:04d}.keras"
    with zipfile.ZipFile(folder / name, "w") as archive:
        archive.writestr("metadata.json", "{}")
    (folder / "latest.json").write_text(json.dumps(
        {"epoch": epoch, "file": name, "sha256": checkpoints.sha256(folder / name)}))


def test_resume_starts_from_the_saved_config(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fake_checkpoint(run_dir)
    C.dump(C.load(Demo(), sets=["train.epochs=2", "model.units=3"]), run_dir / "config.yaml")
    cfg, args = recipe_args.parse(Demo(), ["--resume", str(run_dir), "--set", "train.epochs=4"])
    assert (cfg.train.epochs, cfg.model.units) == (4, 3)
    with pytest.raises(SystemExit):
        recipe_args.parse(Demo(), ["--resume", str(tmp_path / "missing")])


def test_make_optimizer_builds_a_current_keras_optimizer():
    import keras

    opt = training.TrainConfig(optimizer="sgd", learning_rate=0.25).make_optimizer()
    assert isinstance(opt, keras.optimizers.Optimizer)  # not a Keras 2 legacy optimizer
    assert float(opt.learning_rate.numpy() if hasattr(opt.learning_rate, "numpy")
                 else opt.learning_rate) == 0.25
    assert type(training.TrainConfig(optimizer="adam").make_optimizer(0.5)).__name__ == "Adam"
    with pytest.raises(ValueError, match="'nope' is not a Keras optimizer name"):
        training.TrainConfig(optimizer="nope").make_optimizer()


def test_a_run_folder_from_before_the_run_section_still_resumes(tmp_path):
    """Run folders written when checkpoint_keep and tensorboard were train keys resume, the
    keys read into the run section; an unknown key still fails."""
    @dataclasses.dataclass
    class WithRun(training.RecipeConfig):
        train: training.TrainConfig = dataclasses.field(
            default_factory=training.TrainConfig)

    run_dir = tmp_path / "old-run"
    run_dir.mkdir()
    fake_checkpoint(run_dir)
    (run_dir / "config.yaml").write_text(
        "train:\n  epochs: 3\n  checkpoint_keep: 5\n  tensorboard: false\n")
    cfg = recipe_args.resolve(WithRun(), resume=str(run_dir), sets=["train.epochs=6"])
    assert (cfg.train.epochs, cfg.run.checkpoint_keep, cfg.run.tensorboard) == (6, 5, False)
    (run_dir / "config.yaml").write_text("train:\n  checkpoint_kept: 5\n")
    with pytest.raises(C.ConfigError, match="unknown config key 'train.checkpoint_kept'"):
        recipe_args.resolve(WithRun(), resume=str(run_dir))


def test_run_section_is_validated():
    with pytest.raises(C.ConfigError, match="run.checkpoint_keep must be >= 1, got 0"):
        C.load(training.RecipeConfig(), sets=["run.checkpoint_keep=0"])
