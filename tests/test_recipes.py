"""Every recipe, tiny, in one process and under horovodrun -np 2; the bwkeras command."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

import recipes
from bwkeras import cli
from launch import BASE_ENV, REPO, check, run_file
from test_plots import check_png

RECIPES = list(recipes.NAMES)
RECIPES_DIR = os.path.join(REPO, "recipes")


def tiny(name):
    return os.path.join(RECIPES_DIR, "configs", f"{name}-tiny.yaml")


def load_recipe(name):
    return recipes.load(name)


def check_run_dir(runs_dir, name, sets=()):
    """The one run folder holds parseable outputs and a report whose plots exist; its
    config.yaml holds the tiny config's changes and then the --set ones."""
    (run_name,) = os.listdir(runs_dir)
    assert re.fullmatch(rf"{name}-\d{{8}}-\d{{6}}", run_name)
    path = os.path.join(runs_dir, run_name)
    saved = yaml.safe_load(open(os.path.join(path, "config.yaml")))
    changes = yaml.safe_load(open(tiny(name)))
    for item in sets:
        key, _, value = item.partition("=")
        section, _, field = key.partition(".")
        changes.setdefault(section, {})[field] = yaml.safe_load(value)
    for section, values in changes.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert saved[section][key] == value, (section, key)
        else:
            assert saved[section] == values
    metrics = json.load(open(os.path.join(path, "metrics.json")))
    assert metrics["results"], "metrics.json lists no results"
    report = open(os.path.join(path, "report.md")).read()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert links, "report.md shows no plots"
    for link in links:
        check_png(os.path.join(path, link))
    assert "| ---" not in report and "|---|" in report  # a markdown table
    for other in re.findall(r"\]\(([^)!]+\.(?:csv|yaml))\)", report):
        assert os.path.exists(os.path.join(path, other)), other
    leftovers = [f for _, _, files in os.walk(path) for f in files if ".tmp" in f]
    assert not leftovers, leftovers
    return path, metrics


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_single_process(name, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    networks = name in ("mlp", "sunspots", "sequence_labeling", "large_batch")
    # The networks log to TensorBoard by default; the tiny configs turn it off for speed,
    # so switch it back on here to cover the default path.
    sets = ["run.tensorboard=true"] if networks else []
    run = load_recipe(name).main(["--config", tiny(name), "--runs-dir", str(runs_dir),
                                  *[a for s in sets for a in ("--set", s)]])
    path, metrics = check_run_dir(runs_dir, name, sets)
    assert run.path == path
    out = capsys.readouterr().out
    assert "|---|" in out and f"Outputs in {path}" in out
    if networks:   # the networks are checkpointed
        assert any(f.endswith(".keras") for f in os.listdir(path))
        ckpts = [f for _, _, files in os.walk(os.path.join(path, "checkpoints")) for f in files]
        assert "latest.json" in ckpts
        events = [f for _, _, files in os.walk(os.path.join(path, "tensorboard")) for f in files
                  if f.startswith("events.out.tfevents")]
        assert events, "no TensorBoard event files"


@pytest.mark.launcher
# capacity: via the CLI below. On the keras2 stack only the demo's recipe: the two-rank
# training path of each stack is what test_distributed_training proves; here it is the
# recipes' own wiring, which does not depend on the Keras major.
@pytest.mark.parametrize("name", [r if r == "sunspots" else pytest.param(r, marks=pytest.mark.one_stack)
                                  for r in RECIPES if r != "capacity"])
def test_recipe_two_ranks(name, tmp_path):
    runs_dir = tmp_path / "runs"
    proc = check(run_file(tmp_path, os.path.join(RECIPES_DIR, f"{name}.py"), np=2, timeout=240,
                          args=("--config", tiny(name), "--runs-dir", str(runs_dir))))
    path, metrics = check_run_dir(runs_dir, name)
    if "ranks" in metrics:
        assert metrics["ranks"] == 2
    if name == "large_batch":   # each global batch split over the two ranks
        assert all(r["per-rank batch"] * 2 == r["global batch"] for r in metrics["results"])
    # rank 0 alone prints the table
    assert proc.stdout.count("Outputs in") == 1


def test_sunspots_resume_continues_from_checkpoint(tmp_path):
    runs_dir = tmp_path / "runs"
    recipe = load_recipe("sunspots")
    first = recipe.main(["--config", tiny("sunspots"), "--runs-dir", str(runs_dir),
                         "--set", "model.cells=[gru]", "--set", "train.epochs=1"])
    again = recipe.main(["--resume", first.path, "--set", "train.epochs=2"])
    assert again.path == first.path and again.initial_epoch == 1
    rows = open(os.path.join(first.path, "history-gru.csv")).read().splitlines()
    assert [r.split(",")[0] for r in rows] == ["epoch", "1", "2"]
    assert json.load(open(os.path.join(first.path, "checkpoints", "gru", "latest.json")))["epoch"] == 2
    assert os.listdir(runs_dir) == [os.path.basename(first.path)]


# ---- the bwkeras command ---------------------------------------------------------------

def bwkeras(*args, timeout=120):
    env = dict(os.environ, **BASE_ENV)
    env["PYTHONPATH"] = os.pathsep.join([REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return subprocess.run([sys.executable, "-m", "bwkeras.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_cli_lists_recipes(capsys):
    assert cli.main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[0] for line in lines) == sorted(RECIPES)
    assert all(len(line.split(None, 1)) == 2 for line in lines)  # each with its one line


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and "show-config" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["run", "--help"])
    assert exit_.value.code == 0 and "-np" in capsys.readouterr().out
    assert cli.main(["run", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'nope'" in err and "sunspots" in err
    assert cli.main(["run", "capacity", "-np", "0"]) == 2
    with pytest.raises(SystemExit) as exit_:
        cli.main([])
    assert exit_.value.code == 2


def test_cli_show_config_and_config_errors(tmp_path):
    proc = bwkeras("show-config", "sunspots", "--set", "train.epochs=3", "--set", "model.units=5")
    assert proc.returncode == 0, proc.stderr
    shown = yaml.safe_load(proc.stdout)
    assert shown["train"]["epochs"] == 3 and shown["model"]["units"] == 5
    assert shown["data"]["lags"] == 9

    proc = bwkeras("show-config", "sunspots", "--set", "train.epoch=3")
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown config key 'train.epoch'" in proc.stderr
    assert "train.epochs" in proc.stderr and "train.batch_size" in proc.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: [2\n")
    proc = bwkeras("run", "capacity", "--config", str(bad))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"malformed YAML in config file {bad}" in proc.stderr

    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("data:\n  n: forty\n")
    proc = bwkeras("run", "capacity", "--config", str(wrong), "--runs-dir", str(tmp_path / "r"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert str(wrong) in proc.stderr and "key data.n expects int" in proc.stderr
    assert not (tmp_path / "r").exists()  # nothing was run


@pytest.mark.launcher
def test_cli_run_two_ranks(tmp_path):
    if not cli.shutil.which("horovodrun") and not os.path.exists(
            os.path.join(os.path.dirname(sys.executable), "horovodrun")):
        pytest.skip("horovodrun not available")
    proc = bwkeras("run", "capacity", "-np", "2", "--config", tiny("capacity"),
                   "--runs-dir", str(tmp_path / "runs"), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_run_dir(tmp_path / "runs", "capacity")
