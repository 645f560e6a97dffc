"""Tasks: each has a typed config (with `task`, `model`, `train` sections) and a build function that
returns its model, data, collator and metrics. `nanofm train CONFIG.yaml` picks the task by the
config's `task:` key."""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from nanofm.config import ConfigError, find_config, load_config, read_file
from nanofm.runs import Run, open_run

from .base import TaskParts


@dataclass(frozen=True)
class TaskSpec:
    config_cls: type
    build: Callable[[Any], TaskParts]


def _tasks() -> dict[str, TaskSpec]:
    from . import copy, finetune, mlm, t2i, translation, vision

    return {
        "clip": TaskSpec(t2i.CLIPTaskConfig, t2i.build_clip),
        "copy": TaskSpec(copy.CopyTaskConfig, copy.build),
        "diffusion-decoder": TaskSpec(t2i.DecoderTaskConfig, t2i.build_decoder),
        "diffusion-prior": TaskSpec(t2i.PriorTaskConfig, t2i.build_prior),
        "finetune": TaskSpec(finetune.FinetuneTaskConfig, finetune.build),
        "image-classify": TaskSpec(vision.ImageClassifyTaskConfig, vision.build_classify),
        "mae": TaskSpec(vision.MAETaskConfig, vision.build_mae),
        "mlm": TaskSpec(mlm.MLMTaskConfig, mlm.build),
        "scene-verifier": TaskSpec(t2i.VerifierTaskConfig, t2i.build_verifier),
        "translate-rnn": TaskSpec(translation.TranslateRNNConfig, translation.build),
        "translate-transformer": TaskSpec(translation.TranslateTransformerConfig, translation.build),
    }


def task_names() -> list[str]:
    return sorted(_tasks())


def load_task_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Read a run config (a file, or the name of a shipped one: find_config); its `task:` key chooses the config
    class (and so what every other key may be)."""
    path = find_config(path)
    data, origins = read_file(path)
    name = data.get("task")
    for item in overrides:  # `task=...` given on the command line wins
        if item.startswith("task="):
            name = item.partition("=")[2]
    tasks = _tasks()
    if name not in tasks:
        where = origins.get("task", str(path))
        raise ConfigError(f"{where}: 'task' must be one of {sorted(tasks)}, got {name!r}")
    return load_config(tasks[name].config_cls, path, overrides)


def open_trained(run_dir: str | Path, checkpoint: str | None = "best") -> tuple[Run, Any]:
    """A run folder of any task, opened at `checkpoint` (None: none), and its typed config."""
    run = open_run(run_dir, checkpoint)
    if run.task not in _tasks():
        raise ConfigError(f"{run.dir / 'config.yaml'}: 'task' must be one of {task_names()}, got {run.task!r}")
    return run, run.config(_tasks()[run.task].config_cls)


def load_trained(run_dir: str | Path, task: str, what: str, model_cls: Callable[[Any], Any],
                 checkpoint: str = "best") -> tuple[Any, Any]:
    """(config, model with its `checkpoint` weights) of a run folder that must be of `task` (`what` names
    it in the error)."""
    run = open_run(run_dir, checkpoint, (task,), what)
    cfg = run.config(_tasks()[task].config_cls)
    return cfg, run.load_weights(model_cls(cfg.model))


def build_task(cfg: Any) -> TaskParts:
    """The model, data and metrics of a run config. `cfg` is left as it was: the build works on a copy, and what
    the data fills in (vocabulary size, image shape, classes, normalisation) is in parts.config, which is what
    the run's config.yaml records."""
    resolved = deepcopy(cfg)
    parts = _tasks()[cfg.task].build(resolved)
    parts.config = resolved
    return parts


__all__ = ["TaskParts", "build_task", "load_task_config", "load_trained", "open_trained", "task_names"]
