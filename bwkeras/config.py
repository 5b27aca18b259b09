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
file; a wrong type names the file (or ``--set``), the key and the expected type. Values in
messages are cut to a readable length (`short`).

Input is bounded: a config file is read up to `MAX_FILE_BYTES` and must be UTF-8; YAML is
read by a restricted safe loader (`parse_yaml`) that refuses nesting deeper than
`MAX_DEPTH`, aliases that expand past `MAX_NODES` nodes or refer to themselves, and a
key given twice in one mapping. Every failure is a `ConfigError`.

The mechanism alone: the sections the recipes share are in `bwkeras.training`, and
their command line (``--config``, ``--set``, ``--resume``...) is ``recipes/args.py``.
"""
import copy
import dataclasses
import math
import os
import stat
import types
import typing

import yaml

from . import atomic

__all__ = [
    "Config", "ConfigError", "ConfigTypeError", "override", "apply_yaml", "apply_mapping",
    "read_yaml", "parse_yaml", "apply_sets", "load", "to_dict", "to_yaml", "dump", "keys",
    "finite", "short", "validate_all", "at_least", "fraction", "one_of", "listed",
    "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_NODES",
]

MAX_FILE_BYTES = 256 * 1024   # a config file holds changes only: a few hundred bytes
MAX_DEPTH = 32                # nesting of YAML collections (a recipe config has 2 levels)
MAX_NODES = 100_000           # YAML nodes after expanding aliases
MAX_VALUE_CHARS = 80          # values quoted in messages are cut to this length


def short(value, limit=MAX_VALUE_CHARS):
    """repr(`value`), cut to `limit` characters with the full length noted."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # deeply nested, or an int past the digit limit
        text = f"<{type(value).__name__}>"
    return _cut(text, limit)


def _cut(text, limit):
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


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


class _NonFinite(_Mismatch):
    pass


def _expected(tp, mismatch):
    return "a finite float" if isinstance(mismatch, _NonFinite) else _type_name(tp)


def _coerce(value, tp, from_text):
    """`value` checked (YAML) or parsed (text from --set) against type `tp`."""
    origin = typing.get_origin(tp)
    if tp is typing.Any:
        return parse_yaml(value, "the value") if from_text else value
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
            value = parse_yaml(value, "the value")
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
                number = float(value.strip())
            except ValueError:
                raise _Mismatch from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer past the float range
                raise _Mismatch from None
        else:
            raise _Mismatch
        if not math.isfinite(number):  # inf and nan are never a usable setting
            raise _NonFinite
        return number
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
        f"{source}: unknown config key {short(key)}; valid keys are: {', '.join(valid)}"
    )


def _apply_mapping(cfg, mapping, source, prefix=""):
    """A new config: `cfg` with the nested `mapping` applied, every value checked."""
    if not isinstance(mapping, dict):
        raise ConfigTypeError(
            f"{source}: {prefix.rstrip('.') or 'the top level'} must be a mapping of keys to "
            f"values, got {type(mapping).__name__} {short(mapping)}"
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
        except _Mismatch as mismatch:
            raise ConfigTypeError(
                f"{source}: key {prefix}{key} expects {_expected(tp, mismatch)}, got "
                f"{type(value).__name__} {short(value)}"
            ) from None
    out = dataclasses.replace(cfg, **changes)
    _validate(out, source)
    return out


def _validate(cfg, source):
    check = getattr(cfg, "validate", None)
    if callable(check):
        try:
            check()
        except (ValueError, TypeError, ArithmeticError) as exc:  # 10**400 * 0.5 overflows
            raise ConfigError(f"{source}: {_cut(str(exc), 300)}") from None


def override(cfg, mapping, source="override"):
    """`cfg` with the nested dict `mapping` applied; `cfg` itself is left unchanged."""
    return _apply_mapping(copy.deepcopy(cfg), mapping, source)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (pure Python, so its composer can be bounded) with limits:
    nesting depth, node count after alias expansion, no self-referring alias, no key
    given twice in one mapping."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            node = super().compose_node(parent, index)
            if not hasattr(node, "_bw_size"):  # the alias names a collection still open
                raise yaml.composer.ComposerError(
                    None, None, "an alias refers to the collection that holds it", mark)
            return node
        if self._depth >= MAX_DEPTH and not self.check_event(yaml.ScalarEvent):
            raise yaml.composer.ComposerError(
                None, None, f"nesting deeper than {MAX_DEPTH} levels",
                self.peek_event().start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = ()
        size = 1 + sum(child._bw_size for child in children)
        if size > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_NODES} nodes",
                node.start_mark)
        node._bw_size = size
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _value in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"key {short(key)} is given twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text, source="YAML"):
    """The value of the YAML document `text`, read by the bounded safe loader;
    ConfigError naming `source` and, where known, the line and column."""
    try:
        loader = _Loader(text)
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed YAML in {source}{where}: {problem}") from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # a value PyYAML parses but cannot build: a date like 2001-02-30, an integer
        # past Python's digit limit
        raise ConfigError(f"malformed YAML in {source}: {_cut(str(exc), 200)}") from None


def read_text(path, what="config file"):
    """The UTF-8 text of the file `path`, at most MAX_FILE_BYTES; ConfigError naming the
    file when it cannot be read, is not a regular file or pipe, is too large or is not
    UTF-8."""
    path = os.fspath(path)
    try:
        # Non-blocking open: a named pipe nobody writes to must not hang the open; a read
        # from it then ends at once (no writer), one from `<(command)` waits for its output.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            mode = os.fstat(fd).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
                raise ConfigError(f"{what} {path} is not a regular file")
            if hasattr(os, "set_blocking"):
                os.set_blocking(fd, True)
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_FILE_BYTES // 1024} KiB; "
                          "a config file holds only the changes to the defaults")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{what} {path} is not UTF-8 text (byte {exc.start} on line "
                          f"{line} cannot be decoded)") from None


def read_yaml(path):
    """The mapping in the YAML file `path` (None for an empty file), or ConfigError
    naming the file and, for malformed YAML, the line and column."""
    path = os.fspath(path)
    return parse_yaml(read_text(path), f"config file {path}")


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
        raise ConfigError(f"--set expects KEY=VALUE (e.g. train.epochs=3), got {short(item)}")
    key, value = item.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set expects KEY=VALUE with a dotted key, got {short(item)}")
    return key, value


def apply_sets(cfg, items):
    """`cfg` with ``KEY=VALUE`` overrides applied, each value parsed by its field's type."""
    cfg = copy.deepcopy(cfg)
    for item in items:
        key, text = _parse_set(item)
        source = f"--set {item if len(item) <= MAX_VALUE_CHARS else short(item)}"
        parts = key.split(".")
        # walk to the section that holds the last part
        node, prefix, chain = cfg, "", []
        for part in parts[:-1]:
            fields = _fields(node)
            if part not in fields or not _is_section(fields[part]):
                raise _unknown_key(prefix + part, node, prefix, source)
            chain.append((node, part))
            node, prefix = getattr(node, part), prefix + part + "."
        fields = _fields(node)
        last = parts[-1]
        if last not in fields:
            raise _unknown_key(key, node, prefix, source)
        tp = fields[last]
        if _is_section(tp):
            raise ConfigError(
                f"{source}: {key} is a section; set one of its keys: "
                f"{', '.join(keys(getattr(node, last), key + '.'))}"
            )
        try:
            value = _coerce(text, tp, from_text=True)
        except _Mismatch as mismatch:
            raise ConfigTypeError(
                f"{source}: key {key} expects {_expected(tp, mismatch)}, got {short(text)}"
            ) from None
        except ConfigError as exc:  # the value's YAML is malformed or past a limit
            raise ConfigError(f"{source}: {exc}") from None
        node = dataclasses.replace(node, **{last: value})
        _validate(node, source)
        for parent, name in reversed(chain):
            node = dataclasses.replace(parent, **{name: node})
        cfg = node
    return cfg


def validate_all(cfg, source="config"):
    """Run every section's validate(), innermost first: ConfigError naming the problem.
    `load` ends with it, so a resolved config is valid as a whole, not only the sections
    a file or --set touched."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, Config):
            validate_all(value, source)
    _validate(cfg, source)
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
    return validate_all(apply_sets(cfg, sets))


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
        raise ValueError(f"{name} must be finite, got {short(value)}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {short(value)}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {short(value)}")
    return value


def at_least(name, value, low, high=None):
    """Raise ValueError unless the integer `value` is >= `low` (and <= `high`)."""
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {short(value)}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {short(value)}")
    return value


def fraction(name, value):
    """Raise ValueError unless `value` is strictly between 0 and 1."""
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be a fraction between 0 and 1 (exclusive), "
                         f"got {short(value)}")
    return value


def one_of(name, value, allowed):
    """Raise ValueError unless `value` is one of `allowed` (named in the message)."""
    if value not in allowed:
        raise ValueError(f"{name} {short(value)} is not one of {', '.join(allowed)}")
    return value


def listed(name, values, check=None):
    """Raise ValueError unless `values` is a non-empty list without repeats; `check(item)`
    then validates each item."""
    if not values:
        raise ValueError(f"{name} must list at least one value, got []")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} lists a value twice: {short(values)}")
    for value in values:
        if check is not None:
            check(value)
    return values
