"""The store of model families, named presets, tasks and Hugging Face adapters; it imports no model. Each folder of
nanofm.families registers what it holds when imported (importing nanofm.families imports them all), and the
lookups are used through it: `nanofm.families.create("transformer-tiny", d_model=128)` builds a model;
`get_config` only its config; `task("mlm")` a task's config class and build function; `adapter("bert")` the
Hugging Face rename tables of a model_type.

A family ties a config class to a model class; each family has a tiny debug preset for tests and demos.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from nanofm.config import ConfigError, from_dict, to_dict


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


@dataclass(frozen=True)
class TaskSpec:
    name: str
    config_cls: type  # the run config's class (its `task:` key is `name`)
    build: Callable[[Any], Any]  # config -> nanofm.engine.task.TaskParts


@dataclass(frozen=True)
class Adapter:
    """A family's Hugging Face weights adapter (its hf.py): from_hf(config, weights, target) -> Converted;
    to_hf(model, labels) -> (config dict, tensors); `classes`: the nanofm model classes it exports."""
    model_type: str
    from_hf: Callable[..., Any]
    to_hf: Callable[..., Any]
    classes: tuple[type, ...]
    title: str  # how messages name the family ("BERT")


_FAMILIES: dict[str, Family] = {}
_PRESETS: dict[str, Preset] = {}
_TASKS: dict[str, TaskSpec] = {}
_ADAPTERS: dict[str, Adapter] = {}


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
        known = ", ".join(sorted(_PRESETS)) or "none yet (importing nanofm.families registers them)"
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


def register_task(name: str, config_cls: type, build: Callable[[Any], Any]) -> None:
    _TASKS[name] = TaskSpec(name, config_cls, build)


def task_names() -> list[str]:
    return sorted(_TASKS)


def task(name: str, where: str = "task") -> TaskSpec:
    """The task named by a config's `task:` key (`where` names that key in the error)."""
    if name not in _TASKS:
        raise ConfigError(f"{where}: 'task' must be one of {task_names()}, got {name!r}")
    return _TASKS[name]


def register_adapter(model_type: str, from_hf: Callable[..., Any], to_hf: Callable[..., Any], classes: tuple[type, ...],
                     title: str) -> None:
    _ADAPTERS[model_type] = Adapter(model_type, from_hf, to_hf, classes, title)


def adapter(model_type: str | None) -> Adapter | None:
    """The adapter of a config.json's model_type, None when no family reads it."""
    return _ADAPTERS.get(model_type or "")


def adapter_of(model: nn.Module) -> Adapter | None:
    """The adapter that exports this model's class, None when none does."""
    return next((a for a in _ADAPTERS.values() if isinstance(model, a.classes)), None)


def adapters() -> list[Adapter]:
    return list(_ADAPTERS.values())


__all__ = ["Adapter", "ConfigError", "Preset", "TaskSpec", "adapter", "adapter_of", "adapters", "create", "get_config",
           "get_preset", "presets", "register_adapter", "register_family", "register_preset", "register_task", "task",
           "task_names"]
