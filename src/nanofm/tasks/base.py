"""What a task hands the Trainer and the command line."""

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
    extras: dict[str, Any] = field(default_factory=dict)  # task-specific pieces (a tokenizer, a test split)


def fit_to_end(trainer: Any, run_dir: Path) -> dict[str, float]:
    """trainer.fit(), for runs whose result is scored next (benchmarks, comparisons): a run stopped by a
    signal is an error, so that nothing half-trained gets scored; rerunning the command resumes it."""
    from nanofm.train import TrainingError

    metrics = trainer.fit()
    if trainer.stopped:
        raise TrainingError(f"{run_dir}: stopped at step {trainer.step}; rerun the same command to resume from its checkpoint")
    return metrics
