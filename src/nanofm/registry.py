"""The store of model families and named presets; it imports no model. Each family registers itself and its
presets beside its model (nanofm.models does it on import), and the lookups are used through it:
`nanofm.models.create("transformer-tiny", d_model=128)` builds a model; `get_config` only its config.

A family ties a config class to a model class; each family has a tiny debug preset for tests and demos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from .config import ConfigError, from_dict, to_dict


@dataclass(frozen=True)
class Family:
    name: str
    config_cls: type
    model_cls: Callable[[Any], nn.Module]


@dataclass(frozen=True)
class Preset:
    name: str
    family: str
    config: Any  # an instance of the family's config class
    description: str


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, Preset] = {}


def register_family(name: str, config_cls: type, model_cls: Callable[[Any], nn.Module]) -> None:
    _FAMILIES[name] = Family(name, config_cls, model_cls)


def register_preset(name: str, family: str, config: Any, description: str) -> None:
    if family not in _FAMILIES:
        raise KeyError(f"preset {name!r}: unknown family {family!r}")
    if not isinstance(config, _FAMILIES[family].config_cls):
        raise TypeError(f"preset {name!r}: config must be a {_FAMILIES[family].config_cls.__name__}")
    _PRESETS[name] = Preset(name, family, config, description)


def presets(family: str | None = None) -> list[Preset]:
    if family is not None and family not in _FAMILIES:
        raise ConfigError(f"unknown family {family!r}; families: {', '.join(sorted(_FAMILIES))}")
    return [p for p in _PRESETS.values() if family is None or p.family == family]


def get_preset(name: str) -> Preset:
    if name not in _PRESETS:
        known = ", ".join(sorted(_PRESETS)) or "none yet (the lookups are nanofm.models', which registers them)"
        raise ConfigError(f"unknown preset {name!r}; available: {known}")
    return _PRESETS[name]


def get_config(name: str, **overrides: Any) -> Any:
    """The preset's config with overrides (dotted keys for nested fields: **{"a.b": 1}), type-checked."""
    preset = get_preset(name)
    if not overrides:
        return dataclasses.replace(preset.config)
    data = to_dict(preset.config)
    origins: dict[str, str] = {"": f"preset {name!r}"}
    for key, value in overrides.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        origins[key] = f"override {key}={value!r}"
    return from_dict(type(preset.config), data, origins)


def create(name: str, **overrides: Any) -> nn.Module:
    """Build the model of preset `name`, with config overrides."""
    config = get_config(name, **overrides)
    return _FAMILIES[get_preset(name).family].model_cls(config)


__all__ = ["ConfigError", "Preset", "create", "get_config", "get_preset", "presets", "register_family", "register_preset"]
