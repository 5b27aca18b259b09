"""Atomic writes: whole files or the old content, never half a file."""
import csv
import json
import os

import numpy as np
import pytest
import yaml

from bwkeras import atomic


def test_atomic_writers_round_trip(tmp_path):
    atomic.write_json(tmp_path / "m.json", {"r": np.float32(0.5), "n": np.int64(3),
                                                 "bad": float("nan"), "a": np.arange(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"r": 0.5, "n": 3, "bad": None,
                                                             "a": [0, 1, 2]}
    atomic.write_csv(tmp_path / "h.csv", [{"epoch": 1, "loss": 2.0},
                                               {"epoch": 2, "loss": 1.0, "val_loss": 1.5}])
    rows = list(csv.DictReader(open(tmp_path / "h.csv")))
    assert rows == [{"epoch": "1", "loss": "2.0", "val_loss": ""},
                    {"epoch": "2", "loss": "1.0", "val_loss": "1.5"}]
    atomic.write_yaml(tmp_path / "c.yaml", {"a": {"b": 1}})
    assert yaml.safe_load((tmp_path / "c.yaml").read_text()) == {"a": {"b": 1}}
    mode = os.stat(tmp_path / "c.yaml").st_mode & 0o777
    assert mode & 0o044, f"files must be readable by others as with open(), got {oct(mode)}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml", "h.csv", "m.json"]


def test_atomic_write_keeps_old_content_when_writing_fails(tmp_path):
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"good": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic.atomic_path(target) as tmp:
            with open(tmp, "w") as fh:
                fh.write('{"half": ')
            raise RuntimeError("disk full")
    assert json.loads(target.read_text()) == {"good": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with pytest.raises(TypeError, match="cannot write object"):
        atomic.write_json(target, {"x": object()})
    assert json.loads(target.read_text()) == {"good": 1}
