"""Tasks: each has a typed config (with `task`, `model`, `train` sections) and a build function that
returns its model, data, collator and metrics; the families register them (importing nanofm.families, as this
module does, registers every one). `nanofm train CONFIG.yaml` picks the task by the config's `task:` key."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from nanofm.config import find_config, load_config, read_file, to_yaml
from nanofm.engine import Trainer, TrainingError
from nanofm.engine.cards import write_model_card
from nanofm.engine.task import TaskParts
from nanofm.engine.tracking import read_metrics
import nanofm.families  # noqa: F401  (registers every family's tasks)
from nanofm.registry import task, task_names
from nanofm.runs import Run, load_trained, open_run
from nanofm.viz import plot_loss_curve

AFTER_FIT = 0.3  # seconds a budget run leaves for finish_run (loss-curve plot, model card) after its training


def load_task_config(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """Read a run config (a file, or the name of a shipped one: find_config); its `task:` key chooses the config
    class (and so what every other key may be)."""
    path = find_config(path)
    data, origins = read_file(path)
    name = data.get("task")
    for item in overrides:  # `task=...` given on the command line wins
        if item.startswith("task="):
            name = item.partition("=")[2]
    return load_config(task(name, origins.get("task", str(path))).config_cls, path, overrides)


def open_trained(run_dir: str | Path, checkpoint: str | None = "best") -> tuple[Run, Any]:
    """A run folder of any task, opened at `checkpoint` (None: none), and its typed config."""
    run = open_run(run_dir, checkpoint)
    return run, run.task_config()


def build_task(cfg: Any) -> TaskParts:
    """The model, data and metrics of a run config. Builders leave `cfg` as it was: what the data fills in
    (vocabulary size, image shape, classes, normalisation) is in a new config, parts.config, which is what the
    run's config.yaml records."""
    parts = task(cfg.task).build(cfg)
    if parts.config is None:
        raise TypeError(f"the builder of task {cfg.task!r} returned no config (TaskParts.config)")
    return parts



def task_trainer(parts: TaskParts, cfg: Any, run_dir: Path, resume: str | None = "auto", progress: bool = False,
                 copy_files: bool = True) -> Trainer:
    """The Trainer of a task's parts (cfg.train; config.yaml written from the config the build resolved, with
    cfg.train, which the caller may have set since, e.g. a budget) into run_dir, with the task's
    files (e.g. the tokenizer) copied beside the model unless copy_files is False (non-main DDP ranks)."""
    resolved = cfg if parts.config is None else replace(parts.config, train=cfg.train)  # the caller's training settings
    trainer = Trainer(parts.model, parts.train_data, cfg.train, eval_data=parts.eval_data, collate=parts.collate,
                      compute_metrics=parts.compute_metrics, run_dir=run_dir, config_yaml=to_yaml(resolved), resume=resume,
                      progress=progress, after_fit=AFTER_FIT)
    if copy_files:
        try:
            import matplotlib.figure  # noqa: F401  (heavy, optional: imported now, so the end-of-run plot costs no budget)
        except ImportError:
            pass
        for name, src in parts.files.items():
            shutil.copyfile(src, Path(run_dir) / name)
        for name, text in parts.texts.items():
            (Path(run_dir) / name).write_text(text, encoding="utf-8")
    return trainer


def finish_run(trainer: Trainer, run_dir: Path, report: str | None = None) -> None:
    """What a finished run's folder gets beside its checkpoints (main process): loss_curve.png and README.md."""
    if not trainer.dist.is_main or trainer.stopped:
        return
    try:
        plot_loss_curve(read_metrics(Path(run_dir) / "metrics.jsonl"), Path(run_dir) / "loss_curve.png", title=Path(run_dir).name)
    except ImportError:  # matplotlib missing: the metrics file still has everything
        pass
    write_model_card(run_dir, report)


def fit_to_end(trainer: Trainer, run_dir: Path) -> dict[str, float]:
    """trainer.fit(), for runs whose result is scored next (benchmarks, comparisons): a run stopped by a
    signal is an error, so that nothing half-trained gets scored; rerunning the command resumes it. A finished
    run gets its loss curve and model card (README.md)."""
    metrics = trainer.fit()
    if trainer.stopped:
        raise TrainingError(f"{run_dir}: stopped at step {trainer.step}; rerun the same command to resume from its checkpoint")
    finish_run(trainer, run_dir)
    return metrics

__all__ = ["TaskParts", "build_task", "finish_run", "fit_to_end", "load_task_config", "load_trained", "open_trained",
           "task_names", "task_trainer"]
