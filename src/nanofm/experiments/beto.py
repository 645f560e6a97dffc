"""The BETO-style table: fine-tune each model on each task of the suite and score the test split.

Columns: every pretrained run given, then the first one's architecture from random weights (what
pretraining buys). Rows: tasks, with their metric and split (silver tasks marked). The best value of a row
is bold. Each fine-tuning run keeps its folder, and the test score is taken at its best dev checkpoint.
With several seeds every cell is fine-tuned once per seed (the head's initialisation and the data order
change; the pretrained weights do not) and the table shows the means: one run per cell swings a small task
by several points.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from nanofm.config import ConfigError, apply_overrides, from_dict
from nanofm.data.spanish_tasks import load_task
from nanofm.engine import load_model_weights
from nanofm.engine.checkpoint import pick_checkpoint
from nanofm.engine.config import format_duration
from nanofm.experiments.label_curve import format_label_curve, label_curve
from nanofm.experiments.timeshare import TimeShare
from nanofm.families.bert.finetune import FinetuneTaskConfig, finetune_config, score
from nanofm.progress import progress_bar, write
from nanofm.tasks import build_task, fit_to_end, task_trainer

# The lecture's table (BETO paper, full scale, real benchmarks): for the reader, never mixed with ours.
LECTURE = {"POS": (98.97, 97.10), "NER-C": (88.43, 87.38), "MLDoc": (95.60, 95.70), "PAWS-X": (89.05, 90.70),
           "XNLI": (82.01, 78.50)}  # BETO-cased, best multilingual BERT


def finetune_and_score(run_dir: str | Path, task_dir: str | Path, from_scratch: bool, out: Path,
                       overrides: list[str], progress: bool = False, seed_offset: int = 0) -> dict[str, float]:
    """One fine-tuning run, its train.seed moved by seed_offset; the test metrics of its best dev checkpoint."""
    data = finetune_config(run_dir, str(task_dir), from_scratch)
    origins = {"": f"fine-tuning config of {run_dir}"}
    apply_overrides(data, overrides, origins)
    cfg = from_dict(FinetuneTaskConfig, data, origins)
    cfg.train.seed += seed_offset
    parts = build_task(cfg)
    fit_to_end(task_trainer(parts, cfg, out, progress=progress), out)
    load_model_weights(parts.model, pick_checkpoint(out, "best") / "model.safetensors")
    return score(parts.task_data, parts.model, parts.test_data, parts.collate)


def seed_dir(out: Path, seed: int) -> Path:
    """Where the runs of seed offset `seed` go: out itself for 0 (a one-seed table's layout), out/seedN after."""
    return out if seed == 0 else out / f"seed{seed}"


def benchmark_beto(run_dirs: list[str], tasks_dir: str | Path, tasks: list[str], out: str | Path,
                   overrides: list[str] = (), log: Callable[[str], None] = write, progress: bool = True,
                   seeds: int = 1, deadline: float | None = None, curve: tuple[int, ...] = (),
                   curve_task: str | None = None) -> dict:
    """Fine-tune every column on every task, `seeds` times (train.seed, +1, +2, ...); write out/table.md and
    out/table.json; return the results: per cell the mean over seeds and each seed's score. With a `deadline`
    (a time.time() value) the runs share the time left before it equally (train.budget of each). `progress`
    shows a bar over the runs and each run's training bar. `curve`: label counts of a label curve (the first
    pretrained column against random weights, on curve_task, default the first task), with the table's recipe
    and budget per run; a count equal to the table's data.labels reuses the table's cells (one seed)."""
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    out = Path(out)
    columns = [(f"{Path(r).name} (pretrained)", r, False) for r in run_dirs]
    columns.append((f"{Path(run_dirs[0]).name} architecture, random weights", run_dirs[0], True))
    curve_task = curve_task or (tasks[0] if curve else None)
    if curve and curve_task not in tasks:
        raise ConfigError(f"--curve-task must be one of the table's tasks ({', '.join(tasks)}), got {curve_task!r}")
    table_labels = next((int(o.partition("=")[2]) for o in reversed(overrides) if o.startswith("data.labels=")), None)
    pairs = len(curve) - (1 if table_labels in curve and seeds == 1 else 0)  # curve points trained here, 2 runs each
    rows, lengths = [], {}  # lengths: (task, column) -> the training time of its first seed's run
    n_table = len(tasks) * len(columns) * seeds
    bar = progress_bar(total=n_table + 2 * pairs, desc="benchmark beto", unit="run", enabled=progress)
    share = TimeShare(deadline, [1.0] * n_table + [2.0] * pairs, runs=[1] * n_table + [2] * pairs) \
        if deadline is not None else None
    for name in tasks:
        task_dir = Path(tasks_dir) / name
        task = load_task(task_dir)
        row = {"task": name, "metric": task.metric, "split": "test", "silver": task.silver, "scores": {},
               "seed_scores": {}}
        for col, (label, run, scratch) in enumerate(columns):
            runs = []
            for seed in range(seeds):
                log(f"== {name}: {label}" + (f", seed {seed} ({seed + 1} of {seeds})" if seeds > 1 else ""))
                length = format_duration(share.start()) if share is not None else None
                lengths.setdefault((name, col), length)
                budget = [f"train.budget={length}"] if length else []
                m = finetune_and_score(run, task_dir, scratch, seed_dir(out, seed) / name / f"column{col}",
                                       [*overrides, *budget], progress, seed_offset=seed)
                if share is not None:
                    share.finish()
                runs.append(100 * m["score"])
                bar.update(1)
                log(f"   test {task.metric} {runs[-1]:.2f}")
            row["seed_scores"][label] = runs
            row["scores"][label] = _mean(runs)
        rows.append(row)
    result = {"columns": [c[0] for c in columns], "seeds": seeds, "rows": rows}
    if curve:
        def point(scratch: bool, labels: int, length: str | None) -> float:
            log(f"== label curve, {curve_task}: {labels} labels, {'random weights' if scratch else 'pretrained'}")
            m = finetune_and_score(run_dirs[0], Path(tasks_dir) / curve_task, scratch,
                                   out / "curve" / f"{labels}-{'scratch' if scratch else 'pretrained'}",
                                   [*overrides, f"data.labels={labels}", *([f"train.budget={length}"] if length else [])],
                                   progress)
            bar.update(1)
            return 100 * m["score"]

        def pair_budget() -> str | None:  # each run of a point: half the point's share of the time left
            return format_duration(share.start() / 2) if share is not None else None

        def pair_done() -> None:
            if share is not None:
                share.finish()

        row = next(r for r in rows if r["task"] == curve_task)
        cols = result["columns"]
        known = {(False, table_labels): (row["scores"][cols[0]], lengths[(curve_task, 0)]),
                 (True, table_labels): (row["scores"][cols[-1]], lengths[(curve_task, len(cols) - 1)])} \
            if seeds == 1 and table_labels else {}
        result["curve"] = {**label_curve(curve, point, row["metric"], pair_budget, pair_done, known), "task": curve_task}
    bar.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "table.md").write_text(format_table(result))
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def format_table(result: dict) -> str:
    cols, seeds = result["columns"], result.get("seeds", 1)
    lines = [f"Test scores, each the mean of {seeds} fine-tuning seeds:", ""] if seeds > 1 else []
    lines += ["| task | metric (split) | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for row in result["rows"]:
        best = max(row["scores"].values())
        cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in (row["scores"][c] for c in cols)]
        silver = ", silver labels" if row["silver"] else ""
        lines.append(f"| {row['task']} | {row['metric']} ({row['split']}{silver}) | " + " | ".join(cells) + " |")
    gains = [row["scores"][cols[0]] - row["scores"][cols[-1]] for row in result["rows"]]
    lines.append("")
    lines.append(f"Mean gain of pretraining ({cols[0]} minus random weights): {_mean(gains):+.2f} points"
                 + (f", averaged over {seeds} seeds." if seeds > 1 else "."))
    lines.append("")
    if seeds > 1:  # each seed's gains: how much of the mean is one lucky run
        per_seed = [[row["seed_scores"][cols[0]][s] - row["seed_scores"][cols[-1]][s] for row in result["rows"]]
                    for s in range(seeds)]
        lines.append("| gain of pretraining | " + " | ".join(f"seed {s}" for s in range(seeds)) + " | mean |")
        lines.append("|---|" + "---|" * (seeds + 1))
        for i, row in enumerate(result["rows"]):
            lines.append(f"| {row['task']} | " + " | ".join(f"{g[i]:+.2f}" for g in per_seed) + f" | {gains[i]:+.2f} |")
        lines.append("| mean of the tasks | " + " | ".join(f"{_mean(g):+.2f}" for g in per_seed)
                     + f" | {_mean(gains):+.2f} |")
        lines.append("")
    if result.get("curve"):
        lines += [f"Label curve on {result['curve']['task']} (test {result['curve']['metric']}, the table's recipe; both "
                  "runs of a point train for the same time):", "", format_label_curve(result["curve"], result["curve"]["task"])]
    lines.append("For reference, the lecture's table (BETO paper: real benchmarks, full-scale models; not comparable "
                 "with the rows above):")
    lines.append("")
    lines.append("| task | BETO-cased | best multilingual BERT |")
    lines.append("|---|---|---|")
    lines += [f"| {t} | {b:.2f} | {m:.2f} |" for t, (b, m) in LECTURE.items()]
    return "\n".join(lines) + "\n"
