"""Reading a run folder: the one place that knows its layout. Training writes it (nanofm.engine); everything
that uses a trained run (predictors, evaluate, info, convert) opens it here. Also what the predictors share:
the device they run on and their ranked answers.

    run = open_run("runs/bert", checkpoint="best")   # config.yaml checked, the checkpoint picked and verified
    run.task                                         # "mlm": the config's task key
    cfg = run.config(MLMTaskConfig)                  # the typed config it was trained with
    run.load_weights(model)                          # that checkpoint's model.safetensors, strictly
    run.file("tokenizer.json")                       # a file the run keeps beside its config

A run folder: config.yaml, checkpoints/step-N/ (model.safetensors and the trainer's state) with `best` and
`latest` pointers, metrics.jsonl, and the files its task keeps (tokenizer.json, labels.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch
from torch import Tensor, nn

from nanofm.config import ConfigError, load_config, read_file
from nanofm.engine.checkpoint import load_model_weights, pick_checkpoint
from nanofm.registry import task as task_spec

C = TypeVar("C")


@dataclass(frozen=True)
class Run:
    dir: Path
    task: str  # the task it was trained for (config.yaml's `task:`)
    checkpoint: Path | None  # the checkpoint folder chosen at opening (verified); None: opened for its config only

    def config(self, cls: type[C]) -> C:
        """The run's config as `cls` (the task's config class); unknown keys and wrong types are errors."""
        return load_config(cls, self.dir / "config.yaml")

    def task_config(self) -> Any:
        """The run's config as its task's config class (registered by the family that trains that task)."""
        return self.config(task_spec(self.task, str(self.dir / "config.yaml")).config_cls)

    def load_weights(self, model: nn.Module) -> nn.Module:
        if self.checkpoint is None:
            raise ValueError(f"{self.dir} was opened without a checkpoint (checkpoint=None)")
        load_model_weights(model, self.checkpoint / "model.safetensors")
        return model

    def file(self, name: str) -> Path:
        path = self.dir / name
        if not path.is_file():
            raise ConfigError(f"{self.dir}: no {name} (a {self.task!r} run keeps it beside config.yaml)")
        return path


def open_run(path: str | Path, checkpoint: str | None = "best", tasks: tuple[str, ...] | None = None,
             what: str | None = None) -> Run:
    """Open run folder `path` at `checkpoint` ("best" falling back to latest, "latest", a checkpoint folder, or
    None: none, for its config alone).
    With `tasks`, a run of another task is an error saying it is not `what` run (e.g. "a translation")."""
    path = Path(path)
    if not (path / "config.yaml").is_file():
        raise ConfigError(f"{path}: not a run folder (no config.yaml)")
    data, origins = read_file(path / "config.yaml")
    task = data.get("task")
    if not isinstance(task, str):
        raise ConfigError(f"{origins.get('task', path / 'config.yaml')}: 'task' must name the run's task, got {task!r}")
    if tasks is not None and task not in tasks:
        raise ConfigError(f"{path}: not {what or ' or '.join(tasks)} run (task {task!r})")
    return Run(path, task, None if checkpoint is None else pick_checkpoint(path, checkpoint))


def load_trained(run_dir: str | Path, task: str, what: str, model_cls: Callable[[Any], Any],
                 checkpoint: str = "best") -> tuple[Any, Any]:
    """(config, model with its `checkpoint` weights) of a run folder that must be of `task` (`what` names
    it in the error)."""
    run = open_run(run_dir, checkpoint, (task,), what)
    cfg = run.task_config()
    return cfg, run.load_weights(model_cls(cfg.model))


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device` as given, else CUDA when present, else Apple's MPS when present, else the CPU (predictors)."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    return torch.device("mps" if mps is not None and mps.is_available() else "cpu")


def ranked(probs: Tensor, names: list[str], k: int | None) -> list[list[tuple[str, float]]]:
    """probs (B, C) -> for each row, its k likeliest names with their probabilities (None: all), likeliest first."""
    top = probs.topk(min(k or probs.size(-1), probs.size(-1)), dim=-1)
    return [[(names[i], p) for i, p in zip(idx.tolist(), pr.tolist())] for idx, pr in zip(top.indices, top.values)]
