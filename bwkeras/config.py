"""One config mechanism for every recipe (in the style of tensorflow/models ``official/``).

Typed defaults are dataclasses; a field whose type is another `Config` is a section:

    @dataclasses.dataclass
    class Train(Config):
        epochs: int = 10
        learning_rate: float = 0.01

    @dataclasses.dataclass
    class MyConfig(Config):
        train: Train = dataclasses.field(default_factory=Train)

- A YAML file holds only the changes (``train: {epochs: 3}``).
- ``--set train.epochs=3`` overrides one key; the text is parsed by the field's type.
- The resolved config is written next to the run's outputs (`dump`).

Errors name what went wrong: an unknown key lists the valid keys; malformed YAML names the
file; a wrong type names the file (or ``--set``), the key and the expected type.

The mechanism alone: the sections the recipes share are in `bwkeras.training`, and
their command line (``--config``, ``--set``, ``--resume``...) is ``recipes/args.py``.
"""
import copy
import dataclasses
import math
import os
import types
import typing

import yaml

from . import atomic

__all__ = [
    "Config", "ConfigError", "ConfigTypeError", "override", "apply_yaml", "apply_mapping",
    "read_yaml", "apply_sets", "load", "to_dict", "to_yaml", "dump", "keys", "finite",
]


class ConfigError(ValueError):
    """A config file, key or value that cannot be used; the message says which and why."""


class ConfigTypeError(ConfigError, TypeError):
    """A value of the wrong type for its key."""


@dataclasses.dataclass
class Config:
    """Base class of config sections: a dataclass with typed fields and defaults."""

    def replace(self, **changes):
        """A copy with `changes` applied (validated like a YAML file's values)."""
        return override(self, changes, source="replace()")

    def to_dict(self):
        return to_dict(self)

    def to_yaml(self):
        return to_yaml(self)


# ---- introspection ---------------------------------------------------------------------

def _hints(cls):
    return typing.get_type_hints(cls)


def _fields(cfg):
    hints = _hints(type(cfg))
    return {f.name: hints[f.name] for f in dataclasses.fields(cfg)}


def _is_section(tp):
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp):
    origin = typing.get_origin(tp)
    if tp is type(None):
        return "null"
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = _type_name(args[0]) if args else "any"
        return f"list of {inner}"
    if _is_section(tp):
        return f"section {tp.__name__} (a mapping)"
    return getattr(tp, "__name__", str(tp))


def keys(cfg, prefix=""):
    """Every dotted key of `cfg` (sections expanded), in declaration order."""
    out = []
    for name, tp in _fields(cfg).items():
        value = getattr(cfg, name)
        if _is_section(tp) or isinstance(value, Config):
            out.extend(keys(value, f"{prefix}{name}."))
        else:
            out.append(f"{prefix}{name}")
    return out


# ---- values ------------------------------------------------------------------------------

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NULL = {"null", "none", "~", ""}


class _Mismatch(Exception):
    pass


def _coerce(value, tp, from_text):
    """`value` checked (YAML) or parsed (text from --set) against type `tp`."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return yaml.safe_load(value) if from_text else value
    if tp is type(None):
        if value is None or (from_text and value.strip().lower() in _NULL):
            return None
        raise _Mismatch
    if origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = typing.get_args(tp)
        # null first, so "none" on an Optional[str] means None rather than the text "none"
        for arg in sorted(args, key=lambda a: a is not type(None)):
            try:
                return _coerce(value, arg, from_text)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        for choice in choices:
            try:
                if _coerce(value, type(choice), from_text) == choice:
                    return choice
            except _Mismatch:
                continue
        raise _Mismatch
    if origin in (list, tuple):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else typing.Any
        if from_text:
            try:
                value = yaml.safe_load(value)
            except yaml.YAMLError:
                raise _Mismatch from None
            if not isinstance(value, list):
                value = [value]
            from_text = False
        if not isinstance(value, (list, tuple)):
            raise _Mismatch
        items = [_coerce(v, inner, False) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if from_text and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise _Mismatch
    if tp is int:
        if from_text:
            try:
                return int(value.strip())
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if from_text:
            try:
                return float(value.strip())
            except ValueError:
                raise _Mismatch from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if from_text:
            return value
        if isinstance(value, str):
            return value
        raise _Mismatch
    raise TypeError(f"config fields of type {_type_name(tp)} are not supported")


def _unknown_key(key, cfg, prefix, source):
    valid = keys(cfg, prefix)
    return ConfigError(
        f"{source}: unknown config key {key!r}; valid keys are: {', '.join(valid)}"
    )


def _apply_mapping(cfg, mapping, source, prefix=""):
    """A new config: `cfg` with the nested `mapping` applied, every value checked."""
    if not isinstance(mapping, dict):
        raise ConfigTypeError(
            f"{source}: {prefix.rstrip('.') or 'the top level'} must be a mapping of keys to "
            f"values, got {type(mapping).__name__} {mapping!r}"
        )
    fields = _fields(cfg)
    changes = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or key not in fields:
            raise _unknown_key(f"{prefix}{key}", cfg, prefix, source)
        tp = fields[key]
        current = getattr(cfg, key)
        if _is_section(tp):
            changes[key] = _apply_mapping(current, value if value is not None else {},
                                          source, f"{prefix}{key}.")
            continue
        try:
            changes[key] = _coerce(value, tp, from_text=False)
        except _Mismatch:
            raise ConfigTypeError(
                f"{source}: key {prefix}{key} expects {_type_name(tp)}, got "
                f"{type(value).__name__} {value!r}"
            ) from None
    out = dataclasses.replace(cfg, **changes)
    _validate(out, source)
    return out


def _validate(cfg, source):
    check = getattr(cfg, "validate", None)
    if callable(check):
        try:
            check()
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: {exc}") from None


def override(cfg, mapping, source="override"):
    """`cfg` with the nested dict `mapping` applied; `cfg` itself is left unchanged."""
    return _apply_mapping(copy.deepcopy(cfg), mapping, source)


def read_yaml(path):
    """The mapping in the YAML file `path` (None for an empty file), or ConfigError
    naming the file and, for malformed YAML, the line and column."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML in config file {path}{where}: {problem}") from None


def apply_mapping(cfg, data, source):
    """`cfg` with the nested mapping `data` (as read from a YAML file) applied."""
    if data is None:
        return copy.deepcopy(cfg)
    return override(cfg, data, source=source)


def apply_yaml(cfg, path):
    """`cfg` with the changes in the YAML file `path` applied."""
    return apply_mapping(cfg, read_yaml(path), f"config file {os.fspath(path)}")


def _parse_set(item):
    if not isinstance(item, str) or "=" not in item:
        raise ConfigError(f"--set expects KEY=VALUE (e.g. train.epochs=3), got {item!r}")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects KEY=VALUE with a dotted key, got {item!r}")
    return key, value


def apply_sets(cfg, items):
    """`cfg` with ``KEY=VALUE`` overrides applied, each value parsed by its field's type."""
    cfg = copy.deepcopy(cfg)
    for item in items:
        key, text = _parse_set(item)
        parts = key.split(".")
        # walk to the section that holds the last part
        node, prefix, chain = cfg, "", []
        for part in parts[:-1]:
            fields = _fields(node)
            if part not in fields or not _is_section(fields[part]):
                raise _unknown_key(prefix + part, node, prefix, f"--set {item}")
            chain.append((node, part))
            node, prefix = getattr(node, part), prefix + part + "."
        fields = _fields(node)
        last = parts[-1]
        if last not in fields:
            raise _unknown_key(key, node, prefix, f"--set {item}")
        tp = fields[last]
        if _is_section(tp):
            raise ConfigError(
                f"--set {item}: {key} is a section; set one of its keys: "
                f"{', '.join(keys(getattr(node, last), key + '.'))}"
            )
        try:
            value = _coerce(text, tp, from_text=True)
        except _Mismatch:
            raise ConfigTypeError(
                f"--set {item}: key {key} expects {_type_name(tp)}, got {text!r}"
            ) from None
        node = dataclasses.replace(node, **{last: value})
        _validate(node, f"--set {item}")
        for parent, name in reversed(chain):
            node = dataclasses.replace(parent, **{name: node})
        cfg = node
    return cfg


def load(default, files=(), sets=()):
    """The resolved config: `default`, then each YAML file in order, then each ``--set``."""
    if not isinstance(default, Config):
        raise TypeError(f"default must be a Config dataclass instance, got {type(default).__name__}")
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    if isinstance(sets, str):
        sets = [sets]
    cfg = copy.deepcopy(default)
    for path in files:
        cfg = apply_yaml(cfg, path)
    return apply_sets(cfg, sets)


def _plain(value):
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_dict(cfg):
    """Nested plain dict (tuples as lists), in declaration order."""
    out = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = to_dict(value) if dataclasses.is_dataclass(value) else _plain(value)
    return out


def to_yaml(cfg):
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)


def dump(cfg, path):
    """Write the resolved config to `path` as YAML (atomically)."""
    atomic.write_text(path, to_yaml(cfg))
    return path


def finite(name, value, low=None, high=None, low_open=False):
    """Raise ValueError unless `value` is finite and within the bounds (for validate())."""
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
    return value
