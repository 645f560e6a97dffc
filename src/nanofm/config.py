"""Typed dataclass configs: loaded from YAML or JSON, with dotted command-line overrides.

    cfg = load_config(CopyTaskConfig, "configs/copy-tiny.yaml", ["model.d_model=128", "steps=500"])
    print(to_yaml(cfg))

Every value is checked against its field's type, then by the dataclass's __post_init__ (see `require`); an
unknown key, a wrong type, an invalid value or a key written twice in one mapping raises ConfigError naming
the key, and the file and line (or the override) it came from.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

import yaml

from nanofm.errors import DataError, UserError
from nanofm.text_files import read_user_text

C = TypeVar("C")


class ConfigError(UserError, ValueError):
    """A config value that is unknown, of the wrong type, or invalid; the message names where it came from.
    `keys`: the fields it is about, relative to the dataclass that raised it (from_dict makes them dotted)."""

    def __init__(self, message: str, keys: tuple[str, ...] = ()):
        super().__init__(message)
        self.keys = keys


def require(ok: bool, message: str, *keys: str) -> None:
    """The check for a dataclass's __post_init__: unless `ok`, raise ConfigError(message) about fields `keys`.
    Loaded through from_dict, the message gets the keys' dotted names ('lr' -> 'train.lr') and where the
    first one was set (an override of one of them wins)."""
    if not ok:
        raise ConfigError(message, keys)


def require_fits(cfg: Any, data_key: str, specials: int = 0, model_key: str = "model.max_len") -> None:
    """A task config's check that its longest sequence, `data_key` tokens plus `specials` special tokens
    (BOS, EOS), fits the model's positions (`model_key`); both dotted attributes of `cfg`."""
    have, data = (functools.reduce(getattr, k.split("."), cfg) for k in (model_key, data_key))
    plus = f" (+ {specials} special token{'s' if specials > 1 else ''})" if specials else ""
    require(data + specials <= have, f"{model_key}={have} is below {data_key}={data}{plus}: the longest sequences "
            f"would not fit the model's positions; raise {model_key} to {data + specials} or lower {data_key}",
            model_key, data_key)


def from_dict(cls: type[C], data: dict[str, Any], origins: dict[str, str] | None = None, _prefix: str = "") -> C:
    """Build dataclass `cls` from a (nested) dict, checking keys and types. `origins` maps a dotted key
    to where it came from ("configs/x.yaml:3", "override 'a.b=1'") for error messages."""
    origins = origins or {}
    if not isinstance(data, dict):
        raise ConfigError(_where(_prefix.rstrip("."), origins) + f"expected a mapping for {cls.__name__}, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    kwargs = {}
    for key, value in data.items():
        dotted = _prefix + str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" (did you mean '{_prefix}{close[0]}'?)" if close else f"; {cls.__name__} has: {', '.join(names)}"
            raise ConfigError(_where(dotted, origins) + f"unknown key '{dotted}'{hint}")
        kwargs[key] = _coerce(value, hints[key], dotted, origins)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        if not e.keys:
            raise ConfigError(_where_section(_prefix, origins) + str(e)) from None
        keys = tuple(_prefix + k for k in e.keys)
        named = re.compile(r"(?<![\w.'\"])(" + "|".join(map(re.escape, e.keys)) + r")(?!\w)")  # not in quoted values
        wheres = [_where(k, origins) for k in keys]
        where = next((w for w in wheres if w.startswith("override")), wheres[0])
        raise ConfigError(where + named.sub(lambda m: _prefix + m[1], str(e)), keys) from None
    except (ValueError, TypeError) as e:
        raise ConfigError(_where_section(_prefix, origins) + f"invalid {cls.__name__}: {e}") from None


def _where_section(prefix: str, origins: dict[str, str]) -> str:
    """Where a section (prefix 'model.', or '' for the whole config) that fails its own checks came from: the
    overrides of its keys, if any, else its line in the file."""
    overrides = [v for k, v in origins.items() if v.startswith("override") and (k + ".").startswith(prefix)]
    return ", ".join(overrides) + ": " if overrides else _where(prefix.rstrip("."), origins)


def _where(dotted: str, origins: dict[str, str]) -> str:
    dotted = dotted.split("[")[0]  # 'a.sizes[1]' came from 'a.sizes'
    while dotted:
        if dotted in origins:
            return f"{origins[dotted]}: "
        dotted = dotted.rpartition(".")[0]
    return f"{origins['']}: " if "" in origins else ""


def _coerce(value: Any, tp: Any, dotted: str, origins: dict[str, str]) -> Any:
    """Check `value` against type `tp`; convert lists to tuples, YAML's string floats ('1e-3') to float and numbers
    given for a string to that string."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, origins, dotted + ".")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, dotted, origins)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if origin is Literal:
        if value in args:
            return value
        raise ConfigError(_where(dotted, origins) + f"'{dotted}' must be one of {list(args)}, got {value!r}")
    if origin in (list, tuple) and isinstance(value, (list, tuple)):
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{dotted}[{i}]", origins) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict and isinstance(value, dict):
        return {k: _coerce(v, args[1] if args else Any, f"{dotted}.{k}", origins) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):  # data.dir=2024, budget=30
        return str(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(tp, type) and origin is None and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    name = getattr(tp, "__name__", str(tp))
    raise ConfigError(_where(dotted, origins) + f"'{dotted}' must be {name}, got {type(value).__name__} {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict (tuples as lists) that YAML and JSON can hold."""

    def plain(v):
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v) if f.init}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(cfg)


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


SHIPPED = Path(__file__).parent / "configs"  # the run configs installed with the package (the repository's configs/)


def find_config(name: str | Path) -> Path:
    """A config file: `name` when it is a file, else the shipped config of that name (`copy-tiny` or
    `copy-tiny.yaml`), so that `nanofm train copy-tiny` works wherever nanofm is installed."""
    path = Path(name)
    if path.is_file() or len(path.parts) > 1:  # a path is taken as it is (read_file names it if missing)
        return path
    for candidate in (SHIPPED / path.name, SHIPPED / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.yaml")))
    raise ConfigError(f"{name}: no such config file, nor a shipped config of that name (shipped: {shipped})")


def read_file(path: str | Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Read a YAML or JSON file into a dict, with each dotted key's 'file:line' (YAML) for messages."""
    path = Path(path)
    try:
        text = read_user_text(path)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config: {e.strerror}") from None
    except DataError as e:
        raise ConfigError(str(e)) from None
    origins = {"": str(path)}
    try:
        if path.suffix == ".json":
            data = json.loads(text, object_pairs_hook=lambda pairs: _unique_json(pairs, path))
        else:
            loader = _UniqueKeyLoader(text)
            loader.path = path
            try:
                node = loader.get_single_node()
                data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
            _line_numbers(node, "", str(path), origins)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {e}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping at the top, got {type(data).__name__}")
    return data, origins


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last silently)."""

    path: Path

    def construct_mapping(self, node, deep=False):
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *base' may repeat what it merges
                continue
            key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
            if not isinstance(key, Hashable):  # SafeLoader refuses it below
                continue
            if key in first:
                raise ConfigError(f"{self.path}:{line}: duplicate key {key!r} (first at line {first[key]})")
            first[key] = line
        return super().construct_mapping(node, deep)


def _unique_json(pairs: list[tuple[str, Any]], path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ConfigError(f"{path}: duplicate key {key!r}")
        out[key] = value
    return out


def _line_numbers(node: Any, prefix: str, path: str, out: dict[str, str]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            dotted = prefix + str(key.value)
            out[dotted] = f"{path}:{key.start_mark.line + 1}"
            _line_numbers(value, dotted + ".", path, out)


def apply_overrides(data: dict[str, Any], overrides: list[str], origins: dict[str, str]) -> None:
    """Set 'a.b.c=value' items into nested `data` in place; values are parsed as YAML ('3', 'true', '[1,2]')."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, like model.d_model=128")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: '{part}' is not a section")
        try:
            node[parts[-1]] = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            node[parts[-1]] = raw
        for child in [k for k in origins if k.startswith(key + ".")]:  # the override replaced them
            del origins[child]
        origins[key] = f"override {item!r}"


def load_config(cls: type[C], path: str | Path | None = None, overrides: list[str] = (), base: C | None = None) -> C:
    """`base` (default: cls()) updated by the file at `path`, then by dotted overrides."""
    data = to_dict(base if base is not None else cls())
    origins: dict[str, str] = {}
    if path is not None:
        file_data, origins = read_file(path)
        _merge(data, file_data)
    apply_overrides(data, list(overrides), origins)
    return from_dict(cls, data, origins)


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


def save_config(cfg: Any, path: str | Path) -> None:
    Path(path).write_text(to_yaml(cfg))
