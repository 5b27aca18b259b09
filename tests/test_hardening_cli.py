"""A user's mistake at the command line: exit 2, one short message, no traceback, nothing
created or changed (the CLI list of the hardening issue, each case run as a real
``bwkeras`` process), and the bounded config reader behind it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bwkeras import config as C
from bwkeras import training

REPO = Path(__file__).parents[1]
MAX_MESSAGE = 600  # characters: one short message, values cut (a valid-keys list included)


def bwkeras(cwd, *args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "bwkeras.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def snapshot(root):
    """Every path under `root` with its size and modification time."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return out


def _alias_bomb(levels):
    """YAML whose aliases expand tenfold per level (the issue's 380-byte file)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def _not_a_run(tmp):
    d = tmp / "mine"
    d.mkdir()
    (d / "notes.txt").write_text("not a run")
    return d


def _run_without_checkpoint(tmp):
    d = tmp / "half"
    d.mkdir()
    (d / "config.yaml").write_text("train: {epochs: 2}\n")
    return d


# (name, files to create in the test folder, bwkeras arguments, text the message contains)
CASES = [
    ("set-deep-list", {}, ["show-config", "mlp", "--set", "model.hidden_units=" + "[" * 20000],
     "nesting deeper than 32 levels"),
    ("set-deep-mapping", {}, ["show-config", "mlp", "--set", "model.hidden_units=" + "{a: " * 5000],
     "nesting deeper than 32 levels"),
    ("file-deep-list", {"deep.yaml": b"[" * 20000}, ["show-config", "mlp", "--config", "deep.yaml"],
     "nesting deeper than 32 levels"),
    ("file-deep-mapping", {"deep.yaml": b"{a: " * 5000}, ["show-config", "mlp", "--config", "deep.yaml"],
     "nesting deeper than 32 levels"),
    ("not-utf8", {"latin1.yaml": "train: {optimizer: café}\n".encode("latin-1")},
     ["show-config", "mlp", "--config", "latin1.yaml"], "is not UTF-8 text (byte 22 on line 1"),
    ("dev-zero", {}, ["show-config", "mlp", "--config", "/dev/zero"], "is not a regular file"),
    ("too-large", {"big.yaml": b"# padding\n" * 30000}, ["show-config", "mlp", "--config", "big.yaml"],
     "is larger than 256 KiB"),
    ("alias-bomb", {"bomb.yaml": _alias_bomb(7).encode()}, ["show-config", "mlp", "--config", "bomb.yaml"],
     "aliases expand to more than 100000 nodes"),
    ("alias-recursive", {"loop.yaml": b"model: &m {hidden_units: *m}\n"},
     ["show-config", "mlp", "--config", "loop.yaml"], "an alias refers to the collection that holds it"),
    ("duplicate-key", {"dup.yaml": b"train:\n  epochs: 3\n  epochs: 4\n"},
     ["show-config", "mlp", "--config", "dup.yaml"], "key 'epochs' is given twice"),
    ("bad-date", {"date.yaml": b"train: {optimizer: 2001-02-30}\n"},
     ["show-config", "mlp", "--config", "date.yaml"], "day is out of range for month"),
    ("optimizer-show", {}, ["show-config", "mlp", "--set", "train.optimizer=nosuch"],
     "train.optimizer 'nosuch' is not a Keras optimizer name"),
    ("optimizer-run", {}, ["run", "mlp", "--set", "train.optimizer=nosuch"],
     "train.optimizer 'nosuch' is not a Keras optimizer name"),
    ("optimizer-submit", {}, ["submit", "mlp", "--dry-run", "--set", "train.optimizer=nosuch"],
     "train.optimizer 'nosuch' is not a Keras optimizer name"),
    ("units-run", {}, ["run", "mlp", "--set", "model.hidden_units=[-5,0]"],
     "model.hidden_units: each width must be >= 1, got -5"),
    ("units-submit", {}, ["submit", "mlp", "--dry-run", "--set", "model.hidden_units=[-5,0]"],
     "model.hidden_units: each width must be >= 1, got -5"),
    ("fraction-run", {}, ["run", "mlp", "--set", "data.test=2.0"],
     "data.test must be a fraction between 0 and 1 (exclusive), got 2.0"),
    ("fraction-show", {}, ["show-config", "sunspots", "--set", "data.validation=0.6",
                           "--set", "data.test=0.5"], "data.validation + data.test must be < 1"),
    ("cells-run", {}, ["run", "sunspots", "--set", "model.cells=[lstm, rnn]"],
     "model.cells: 'rnn' is not one of simple, lstm, gru"),
    ("lags-run", {}, ["run", "sunspots", "--set", "data.lags=200"], "too few for AR(200)"),
    ("degree-run", {}, ["run", "capacity", "--set", "degrees=[0, 40]"],
     "degrees: each degree must be <= 19, got 40"),
    ("non-finite", {}, ["run", "mlp", "--set", "train.learning_rate=nan"],
     "key train.learning_rate expects a finite float, got 'nan'"),
    ("long-value", {}, ["show-config", "mlp", "--set", "train.optimizer=" + "x" * 100000],
     "... (100002 characters) is not a Keras optimizer name"),
    ("resume-not-a-run", {}, ["run", "mlp", "--resume", "mine"], "not a run directory (it has no config.yaml)"),
    ("resume-no-checkpoint", {}, ["run", "mlp", "--resume", "half"],
     "it has no checkpoints/latest.json (no epoch finished before it stopped)"),
    ("resume-no-intact-checkpoint",
     {"broken/config.yaml": b"train: {epochs: 2}\n",
      "broken/checkpoints/epoch-0001.keras": b"PK\x03\x04 truncated"},
     ["run", "mlp", "--resume", "broken"], "no intact checkpoint in broken/checkpoints"),
    ("runs-dir-file", {"afile": b"x"}, ["run", "mlp", "--runs-dir", "afile"],
     "runs directory afile exists and is not a directory"),
    ("runs-dir-under-file", {"afile": b"x"}, ["run", "mlp", "--runs-dir", "afile/runs"],
     "exists and is not a directory"),
    ("submit-runs-dir-file", {"afile": b"x"}, ["submit", "mlp", "--dry-run", "--runs-dir", "afile"],
     "runs directory afile exists and is not a directory"),
]


@pytest.mark.parametrize("name, files, args, message", CASES, ids=[c[0] for c in CASES])
def test_a_user_mistake_exits_2_with_one_short_message_and_changes_nothing(
        tmp_path, name, files, args, message):
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    _not_a_run(tmp_path)
    _run_without_checkpoint(tmp_path)
    before = snapshot(tmp_path)
    proc = bwkeras(tmp_path, *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert "Traceback" not in err and proc.stdout == ""
    assert err.startswith("bwkeras: error: ") and len(err.splitlines()) == 1, err[:2000]
    assert message in err
    assert len(err) <= MAX_MESSAGE, err
    assert snapshot(tmp_path) == before  # nothing created or changed, config.yaml included


@pytest.mark.parametrize("target", ["chmod", "proc"])
def test_a_read_only_runs_dir_is_refused_before_anything_starts(tmp_path, target):
    if target == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes through permission bits")
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        runs_dir = locked / "runs"
    else:
        if os.access("/proc/sys", os.W_OK):
            pytest.skip("/proc/sys is writable here")
        runs_dir = Path("/proc/sys/bwkeras-runs")
    proc = bwkeras(tmp_path, "run", "mlp", "--runs-dir", str(runs_dir))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "is not writable (read-only file system or no permission)" in proc.stderr
    assert not runs_dir.exists()


def test_the_cases_above_can_fail():
    """The harness sees a success: a valid call exits 0 and prints the config."""
    proc = bwkeras(REPO, "show-config", "mlp", "--set", "train.optimizer=SGD")
    assert proc.returncode == 0 and yaml.safe_load(proc.stdout)["train"]["optimizer"] == "SGD"


# ---- the bounded reader, in process ------------------------------------------------------

def test_limits_are_exact(tmp_path):
    """32 levels pass and 33 fail; 256 KiB pass and one byte more fails; 100000 nodes."""
    assert C.parse_yaml("[" * 32 + "]" * 32) == eval("[" * 31 + "[]" + "]" * 31)
    with pytest.raises(C.ConfigError, match="nesting deeper than 32"):
        C.parse_yaml("[" * 33 + "]" * 33)
    path = tmp_path / "edge.yaml"
    path.write_bytes(b"#" * (256 * 1024 - 1) + b"\n")
    assert C.read_yaml(path) is None
    path.write_bytes(b"#" * (256 * 1024) + b"\n")
    with pytest.raises(C.ConfigError, match="larger than 256 KiB"):
        C.read_yaml(path)
    # level k of the bomb expands to (10**(k+2) - 1) / 9 nodes: 11111 at k=3 (read, as
    # shared lists), 111111 at k=4 (refused)
    four = C.parse_yaml(_alias_bomb(4))
    assert len(four["a3"]) == 10 and four["a3"][0] is four["a2"]
    with pytest.raises(C.ConfigError, match="more than 100000 nodes"):
        C.parse_yaml(_alias_bomb(5))


def test_values_python_cannot_build_are_config_errors():
    with pytest.raises(C.ConfigError, match="Exceeds the limit"):  # int() past 4300 digits
        C.parse_yaml("a: " + "1" * 5000)
    with pytest.raises(C.ConfigError, match="day is out of range"):
        C.parse_yaml("a: 2001-02-30")
    with pytest.raises(C.ConfigError, match="data.n"):  # 10**400 * 0.5 overflows a float
        from recipes import capacity

        C.load(capacity.CONFIG(), sets=["data.n=" + "9" * 400])


def test_merge_keys_still_work_and_duplicates_are_refused():
    data = C.parse_yaml("base: &b {epochs: 3, batch_size: 4}\ntrain: {<<: *b, epochs: 5}\n")
    assert data["train"] == {"epochs": 5, "batch_size": 4}
    with pytest.raises(C.ConfigError, match="key 1 is given twice"):
        C.parse_yaml("{1: a, 1: b}")


def test_messages_cut_long_values():
    assert C.short("x" * 10) == "'xxxxxxxxxx'"
    cut = C.short("x" * 1000)
    assert cut.endswith("... (1002 characters)") and len(cut) < 110
    assert C.short(10 ** 5000) == "<int>"  # repr past Python's digit limit


# ---- the names checked without Keras agree with Keras and bwkeras ------------------------

def test_optimizer_names_are_those_keras_accepts():
    import keras

    for name in training.OPTIMIZERS:
        assert isinstance(keras.optimizers.get(name), keras.optimizers.Optimizer), name
    with pytest.raises(ValueError):
        keras.optimizers.get("nosuch")
    if int(keras.__version__.split(".")[0]) >= 3:
        assert {"adamw", "lion", "adafactor"} <= set(training.OPTIMIZERS)


def test_activation_and_cell_names_are_the_models_own():
    from bwkeras import activations, datasets, models
    from recipes import sunspots

    assert training.ACTIVATIONS == activations.NAMES
    assert training.CELLS == models.CELLS
    assert sunspots.YEARS == len(datasets.sunspots())


@pytest.mark.parametrize("name", __import__("recipes").NAMES)
def test_every_recipe_default_and_tiny_config_is_valid(name):
    import recipes

    default = recipes.load(name).CONFIG()
    assert C.validate_all(default) == default
    C.load(default, [REPO / "recipes" / "configs" / f"{name}-tiny.yaml"])


@pytest.mark.timeout(30)
def test_a_named_pipe_nobody_writes_to_does_not_hang(tmp_path):
    """A blocking open() of a FIFO waits for a writer for ever; the config reader opens
    it without blocking and reads nothing (the defaults stay)."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no named pipes on this platform")
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert C.read_yaml(fifo) is None
    from recipes import mlp

    assert C.load(mlp.CONFIG(), [fifo]) == mlp.CONFIG()
