"""What a task hands the Trainer and the command line: TaskParts (nanofm.tasks trains them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn



@dataclass
class TaskParts:
    model: nn.Module
    train_data: Sequence[Any]
    eval_data: Sequence[Any] | None
    collate: Callable[[list[Any]], dict[str, Any]]
    compute_metrics: Callable[[nn.Module, Sequence[Any]], dict[str, float]] | None = None  # task metrics
    report: Callable[[nn.Module, Sequence[Any], dict[str, float]], str] | None = None  # what `train` prints at the end
    pictures: Callable[[nn.Module, Path], list[Path]] | None = None  # PNGs written into the run folder at the end
    describe: str = ""  # one line about the task, printed before training
    files: dict[str, Path] = field(default_factory=dict)  # files to copy into the run folder (e.g. tokenizer.json)
    texts: dict[str, str] = field(default_factory=dict)  # small files to write into it (e.g. a classifier's labels.json)
    tokenizer: Any = None  # the text tasks' tokenizer (translation, mlm, finetune)
    test_data: Sequence[Any] | None = None  # the held-out test split, scored once at the end (translation, vision, finetune)
    task_data: Any = None  # fine-tuning: the labelled task (a data.task_files.TaskData: labels, metric, splits)
    config: Any = None  # the run config as the build resolved it from the data (a new one: builders leave theirs)
