"""What a task hands the Trainer and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from nanofm.cards import write_model_card


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
    config: Any = None  # the run config as the build resolved it from the data (build_task sets it)


def task_trainer(parts: TaskParts, cfg: Any, run_dir: Path, resume: str | None = "auto", progress: bool = False,
                 copy_files: bool = True) -> Any:
    """The Trainer of a task's parts (cfg.train; config.yaml written from the config the build resolved, with
    cfg.train, which the caller may have set since, e.g. a budget) into run_dir, with the task's
    files (e.g. the tokenizer) copied beside the model unless copy_files is False (non-main DDP ranks)."""
    import shutil

    from nanofm.config import to_yaml
    from nanofm.train import Trainer

    resolved = cfg if parts.config is None else replace(parts.config, train=cfg.train)  # the caller's training settings
    trainer = Trainer(parts.model, parts.train_data, cfg.train, eval_data=parts.eval_data, collate=parts.collate,
                      compute_metrics=parts.compute_metrics, run_dir=run_dir, config_yaml=to_yaml(resolved), resume=resume,
                      progress=progress)
    if copy_files:
        for name, src in parts.files.items():
            shutil.copyfile(src, Path(run_dir) / name)
        for name, text in parts.texts.items():
            (Path(run_dir) / name).write_text(text, encoding="utf-8")
    return trainer


def fit_to_end(trainer: Any, run_dir: Path) -> dict[str, float]:
    """trainer.fit(), for runs whose result is scored next (benchmarks, comparisons): a run stopped by a
    signal is an error, so that nothing half-trained gets scored; rerunning the command resumes it. A finished
    run gets its model card (README.md)."""
    from nanofm.train import TrainingError

    metrics = trainer.fit()
    if trainer.stopped:
        raise TrainingError(f"{run_dir}: stopped at step {trainer.step}; rerun the same command to resume from its checkpoint")
    if trainer.dist.is_main:
        write_model_card(run_dir)
    return metrics
