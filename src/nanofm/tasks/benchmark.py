"""The BETO-style table: fine-tune each model on each task of the suite and score the test split.

Columns: every pretrained run given, then the first one's architecture from random weights (what
pretraining buys). Rows: tasks, with their metric and split (silver tasks marked). The best value of a row
is bold. Each fine-tuning run keeps its folder, and the test score is taken at its best dev checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from nanofm.config import apply_overrides, from_dict

# The lecture's table (BETO paper, full scale, real benchmarks): for the reader, never mixed with ours.
LECTURE = {"POS": (98.97, 97.10), "NER-C": (88.43, 87.38), "MLDoc": (95.60, 95.70), "PAWS-X": (89.05, 90.70),
           "XNLI": (82.01, 78.50)}  # BETO-cased, best multilingual BERT


def finetune_and_score(run_dir: str | Path, task_dir: str | Path, from_scratch: bool, out: Path,
                       overrides: list[str], progress: bool = False) -> dict[str, float]:
    """One fine-tuning run; the test metrics of its best dev checkpoint."""
    from nanofm.config import to_yaml
    from nanofm.train import Trainer, load_model_weights
    from nanofm.train.checkpoint import pick_checkpoint

    from . import build_task
    from .base import fit_to_end
    from .finetune import FinetuneTaskConfig, finetune_config, score

    data = finetune_config(run_dir, str(task_dir), from_scratch)
    origins = {"": f"fine-tuning config of {run_dir}"}
    apply_overrides(data, overrides, origins)
    cfg = from_dict(FinetuneTaskConfig, data, origins)
    parts = build_task(cfg)
    trainer = Trainer(parts.model, parts.train_data, cfg.train, eval_data=parts.eval_data, collate=parts.collate,
                      compute_metrics=parts.compute_metrics, run_dir=out, config_yaml=to_yaml(cfg), resume="auto",
                      progress=progress)
    fit_to_end(trainer, out)
    load_model_weights(parts.model, pick_checkpoint(out, "best") / "model.safetensors")
    return score(parts.extras["task"], parts.model, parts.extras["test"], parts.collate)


def benchmark_beto(run_dirs: list[str], tasks_dir: str | Path, tasks: list[str], out: str | Path,
                   overrides: list[str] = (), log: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Fine-tune every column on every task; write out/table.md and out/table.json; return the results."""
    from nanofm.data.spanish_tasks import load_task

    out = Path(out)
    columns = [(f"{Path(r).name} (pretrained)", r, False) for r in run_dirs]
    columns.append((f"{Path(run_dirs[0]).name} architecture, random weights", run_dirs[0], True))
    rows = []
    for name in tasks:
        task_dir = Path(tasks_dir) / name
        task = load_task(task_dir)
        row = {"task": name, "metric": task.metric, "split": "test", "silver": task.silver, "scores": {}}
        for col, (label, run, scratch) in enumerate(columns):
            log(f"== {name}: {label}")
            m = finetune_and_score(run, task_dir, scratch, out / name / f"column{col}", list(overrides), progress)
            row["scores"][label] = 100 * m["score"]
            log(f"   test {task.metric} {100 * m['score']:.2f}")
        rows.append(row)
    result = {"columns": [c[0] for c in columns], "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "table.md").write_text(format_table(result))
    return result


def format_table(result: dict) -> str:
    cols = result["columns"]
    lines = ["| task | metric (split) | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for row in result["rows"]:
        best = max(row["scores"].values())
        cells = [f"**{v:.2f}**" if v == best else f"{v:.2f}" for v in (row["scores"][c] for c in cols)]
        silver = ", silver labels" if row["silver"] else ""
        lines.append(f"| {row['task']} | {row['metric']} ({row['split']}{silver}) | " + " | ".join(cells) + " |")
    gains = [row["scores"][cols[0]] - row["scores"][cols[-1]] for row in result["rows"]]
    lines.append("")
    lines.append(f"Mean gain of pretraining ({cols[0]} minus random weights): {sum(gains) / max(len(gains), 1):+.2f} points.")
    lines.append("")
    lines.append("For reference, the lecture's table (BETO paper: real benchmarks, full-scale models; not comparable "
                 "with the rows above):")
    lines.append("")
    lines.append("| task | BETO-cased | best multilingual BERT |")
    lines.append("|---|---|---|")
    lines += [f"| {t} | {b:.2f} | {m:.2f} |" for t, (b, m) in LECTURE.items()]
    return "\n".join(lines) + "\n"
