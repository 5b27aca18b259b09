"""The one config mechanism: typed defaults, YAML changes, --set overrides, errors."""
import dataclasses
import typing

import pytest
import yaml

from bwkeras import config as C
from bwkeras import training


@dataclasses.dataclass
class Model(C.Config):
    units: int = 8
    cells: typing.List[str] = dataclasses.field(default_factory=lambda: ["lstm"])
    cell: typing.Literal["SimpleRNN", "LSTM", "GRU"] = "LSTM"
    dropout: typing.Optional[float] = None

    def validate(self):
        if self.units < 1:
            raise ValueError(f"model.units must be >= 1, got {self.units}")


@dataclasses.dataclass
class Demo(C.Config):
    name: str = "demo"
    model: Model = dataclasses.field(default_factory=Model)
    train: training.TrainConfig = dataclasses.field(default_factory=training.TrainConfig)


def write(tmp_path, text, name="changes.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_keys_list_every_leaf_in_order():
    ks = C.keys(Demo())
    assert ks[:6] == ["name", "model.units", "model.cells", "model.cell", "model.dropout",
                      "train.epochs"]
    assert "train.learning_rate" in ks and "model" not in ks


def test_yaml_holds_only_changes_and_defaults_stay(tmp_path):
    path = write(tmp_path, "train:\n  epochs: 3\n  learning_rate: 1\nmodel: {cell: GRU}\n")
    cfg = C.load(Demo(), [path])
    assert cfg.train.epochs == 3
    assert cfg.train.learning_rate == 1.0 and isinstance(cfg.train.learning_rate, float)
    assert cfg.model.cell == "GRU"
    assert cfg.train.batch_size == training.TrainConfig().batch_size
    assert cfg.model.units == 8
    # the default object is never modified
    assert Demo().train.epochs == 10


def test_later_files_and_sets_win(tmp_path):
    a = write(tmp_path, "train: {epochs: 3, batch_size: 4}\n", "a.yaml")
    b = write(tmp_path, "train: {epochs: 5}\n", "b.yaml")
    cfg = C.load(Demo(), [a, b], ["train.epochs=7"])
    assert (cfg.train.epochs, cfg.train.batch_size) == (7, 4)


@pytest.mark.parametrize("item, key, expected", [
    ("train.epochs=3", ("train", "epochs"), 3),
    ("train.learning_rate=1e-3", ("train", "learning_rate"), 1e-3),
    ("train.shuffle=false", ("train", "shuffle"), False),
    ("train.shuffle=Yes", ("train", "shuffle"), True),
    ("name=a=b", ("name",), "a=b"),
    ("model.cells=[lstm, gru]", ("model", "cells"), ["lstm", "gru"]),
    ("model.cells=gru", ("model", "cells"), ["gru"]),
    ("model.dropout=0.25", ("model", "dropout"), 0.25),
    ("model.dropout=null", ("model", "dropout"), None),
    ("model.cell=SimpleRNN", ("model", "cell"), "SimpleRNN"),
    ("train.lr_rule=sqrt", ("train", "lr_rule"), "sqrt"),
])
def test_set_parses_by_field_type(item, key, expected):
    cfg = C.apply_sets(Demo(), [item])
    value = cfg
    for part in key:
        value = getattr(value, part)
    assert value == expected and type(value) is type(expected)


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(C.ConfigError) as err:
        C.apply_sets(Demo(), ["train.epoch=3"])
    msg = str(err.value)
    assert "train.epoch" in msg and "--set train.epoch=3" in msg
    for key in ("train.epochs", "train.batch_size", "train.learning_rate"):
        assert key in msg
    with pytest.raises(C.ConfigError, match=r"unknown config key 'modle'.*model\.units"):
        C.apply_sets(Demo(), ["modle.units=3"])
    path = write(tmp_path, "model:\n  unitz: 3\n")
    with pytest.raises(C.ConfigError) as err:
        C.load(Demo(), [path])
    assert str(path) in str(err.value) and "model.unitz" in str(err.value)
    assert "model.units" in str(err.value) and "train.epochs" not in str(err.value)


@pytest.mark.parametrize("item, expected_type", [
    ("train.epochs=three", "int"),
    ("train.epochs=2.5", "int"),
    ("train.learning_rate=fast", "float"),
    ("train.shuffle=maybe", "bool"),
    ("model.cell=RNN", "one of 'SimpleRNN', 'LSTM', 'GRU'"),
    ("model.cells={a: 1}", "list of str"),
])
def test_set_wrong_type_names_key_and_type(item, expected_type):
    with pytest.raises(C.ConfigTypeError) as err:
        C.apply_sets(Demo(), [item])
    msg = str(err.value)
    key = item.split("=")[0]
    assert f"--set {item}" in msg and f"key {key} expects {expected_type}" in msg
    assert isinstance(err.value, TypeError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize("text, key, expected_type", [
    ("train:\n  epochs: 2.5\n", "train.epochs", "int"),
    ("train:\n  epochs: true\n", "train.epochs", "int"),
    ("train:\n  learning_rate: fast\n", "train.learning_rate", "float"),
    ("train:\n  shuffle: 1\n", "train.shuffle", "bool"),
    ("name: 3\n", "name", "str"),
    ("train: 3\n", "train", "mapping"),
])
def test_yaml_wrong_type_names_file_key_and_type(tmp_path, text, key, expected_type):
    path = write(tmp_path, text)
    with pytest.raises(C.ConfigTypeError) as err:
        C.load(Demo(), [path])
    msg = str(err.value)
    assert str(path) in msg and key in msg and expected_type in msg


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    path = write(tmp_path, "train:\n  epochs: [3\n  batch_size: 4\n")
    with pytest.raises(C.ConfigError) as err:
        C.load(Demo(), [path])
    assert f"malformed YAML in config file {path}" in str(err.value)
    assert "line" in str(err.value)


def test_top_level_must_be_a_mapping_and_missing_file(tmp_path):
    path = write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(C.ConfigTypeError, match="top level must be a mapping"):
        C.load(Demo(), [path])
    with pytest.raises(C.ConfigError, match="cannot read config file .*nope.yaml"):
        C.load(Demo(), [tmp_path / "nope.yaml"])
    assert C.load(Demo(), [write(tmp_path, "# nothing changed\n", "empty.yaml")]) == Demo()


def test_validate_rejects_out_of_range_values():
    with pytest.raises(C.ConfigError, match="train.epochs must be >= 1, got 0"):
        C.apply_sets(Demo(), ["train.epochs=0"])
    with pytest.raises(C.ConfigError, match="train.learning_rate must be > 0"):
        C.apply_sets(Demo(), ["train.learning_rate=-1"])
    with pytest.raises(C.ConfigError, match="model.units must be >= 1"):
        C.apply_sets(Demo(), ["model.units=0"])


def test_set_on_a_section_or_malformed_item():
    with pytest.raises(C.ConfigError, match="train is a section.*train.epochs"):
        C.apply_sets(Demo(), ["train=3"])
    with pytest.raises(C.ConfigError, match="KEY=VALUE"):
        C.apply_sets(Demo(), ["train.epochs"])


def test_resolved_config_round_trips_through_yaml(tmp_path):
    cfg = C.load(Demo(), sets=["model.cells=[gru, lstm]", "train.epochs=4", "model.dropout=0.5"])
    path = C.dump(cfg, tmp_path / "config.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["train"]["epochs"] == 4 and data["model"]["cells"] == ["gru", "lstm"]
    assert set(data) == {"name", "model", "train"}
    assert C.load(Demo(), [path]) == cfg
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_replace_validates():
    cfg = Demo().train.replace(epochs=3)
    assert cfg.epochs == 3
    with pytest.raises(C.ConfigTypeError):
        Demo().train.replace(epochs="3")
