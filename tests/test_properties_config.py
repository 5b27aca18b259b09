"""Property-based tests of the config parser (Hypothesis): whatever YAML file or --set
value a user gives, the outcome is a valid config or a ConfigError, never another
exception; an accepted config survives its own YAML."""
import string

import yaml
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bwkeras import config as C
from recipes import mlp, sunspots

pytestmark = pytest.mark.one_stack

DEFAULTS = [mlp.CONFIG(), sunspots.CONFIG()]
KEYS = sorted({k for cfg in DEFAULTS for k in C.keys(cfg)})
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([10 ** 400, -10 ** 400]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=8), children, max_size=4)),
    max_leaves=20,
)
# mappings shaped like a config: real section and key names mixed with others
sections = st.sampled_from(sorted({k.split(".")[0] for k in KEYS}) + ["nosuch", ""])
leaf_keys = st.sampled_from(sorted({k.split(".")[-1] for k in KEYS}) + ["zzz"])
configish = st.dictionaries(sections, st.one_of(st.dictionaries(leaf_keys, values, max_size=4),
                                                values), max_size=4)


def outcome(default, files=(), sets=()):
    """The resolved config, or None after a ConfigError; anything else fails the test."""
    try:
        return C.load(default, files, sets)
    except C.ConfigError as exc:
        assert str(exc) and len(str(exc)) < 2000, str(exc)[:3000]
        return None


@SETTINGS
@given(st.sampled_from(DEFAULTS), configish)
def test_a_generated_yaml_file_gives_a_config_or_a_config_error(tmp_path, default, data):
    path = tmp_path / "changes.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    cfg = outcome(default, [path])
    if cfg is not None:  # accepted: valid as a whole, and it round-trips through its YAML
        assert C.validate_all(cfg) == cfg
        again = tmp_path / "resolved.yaml"
        C.dump(cfg, again)
        assert C.load(default, [again]) == cfg


@SETTINGS
@given(st.sampled_from(DEFAULTS), st.binary(max_size=300))
def test_any_bytes_in_a_config_file_give_a_config_or_a_config_error(tmp_path, default, data):
    path = tmp_path / "raw.yaml"
    path.write_bytes(data)
    outcome(default, [path])


yamlish = st.text(alphabet=st.sampled_from(list("[]{}:,&*!-|>'\"# \n\t") + list("ab01.e")),
                  max_size=80)


@SETTINGS
@given(st.sampled_from(DEFAULTS), yamlish)
def test_yaml_punctuation_gives_a_config_or_a_config_error(tmp_path, default, text):
    path = tmp_path / "punct.yaml"
    path.write_text(text)
    outcome(default, [path])


@SETTINGS
@given(st.sampled_from(DEFAULTS),
       st.lists(st.tuples(st.one_of(st.sampled_from(KEYS), st.text(max_size=10)),
                          st.one_of(yamlish, st.text(max_size=20),
                                    values.map(lambda v: yaml.safe_dump(v).strip()))),
                max_size=4))
def test_set_items_give_a_config_or_a_config_error(default, items):
    sets = [f"{key}={value}" for key, value in items]
    cfg = outcome(default, sets=sets)
    if cfg is not None:
        assert C.validate_all(cfg) == cfg


@SETTINGS
@given(st.sampled_from(DEFAULTS), st.text(alphabet=string.printable, max_size=30))
def test_a_set_item_without_an_equals_sign_or_key_is_a_config_error(default, text):
    cfg = outcome(default, sets=[text.replace("=", "")])
    assert cfg is None  # no '=': never a valid item


def test_both_outcomes_occur():
    """The properties above can fail either way: a valid change is accepted and a bad one
    refused."""
    assert outcome(mlp.CONFIG(), sets=["train.epochs=2"]).train.epochs == 2
    assert outcome(mlp.CONFIG(), sets=["train.epochs=-2"]) is None
