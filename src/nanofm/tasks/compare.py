"""`nanofm compare translation`: the RNN baseline and the Transformer, same data, same wall-clock budget."""

from __future__ import annotations

import statistics
from pathlib import Path

from nanofm.train import load_model_weights
from nanofm.train.checkpoint import pick_checkpoint
from nanofm.train.run_folder import claim_run_folder
from nanofm.train.tracking import read_metrics

from . import build_task, load_task_config
from .base import fit_to_end, task_trainer
from .translation import evaluate_test


def compare_translation(budget: str, data_dir: str, out: Path, rnn_config: str, transformer_config: str,
                        beam: int = 4, progress: bool = True, rnn_overrides: list[str] = (),
                        transformer_overrides: list[str] = (), fresh: bool = True) -> str:
    """Train both models for `budget` each, translate the test split with each one's best checkpoint,
    and return (and write to out/table.md) a Markdown table. Runs go to out/translate-rnn and
    out/translate-transformer: retrained from nothing when `fresh`, else resumed (or kept, when finished)."""
    rows, examples = [], []
    for name, config, extra in (("RNN: GRU + additive attention", rnn_config, rnn_overrides),
                                ("Transformer", transformer_config, transformer_overrides)):
        cfg = load_task_config(config, [f"train.budget={budget}", f"data.dir={data_dir}", *extra])
        parts = build_task(cfg)
        run_dir = out / cfg.task
        print(f"\n== {name}: {parts.describe}")
        with claim_run_folder(run_dir, overwrite=fresh):  # retrained from nothing: only ever a run folder is cleared
            trainer = task_trainer(parts, cfg, run_dir, None if fresh else "auto", progress)
            fit_to_end(trainer, run_dir)
        records = read_metrics(run_dir / "metrics.jsonl")
        train_seconds = max((r["elapsed"] for r in records if "elapsed" in r), default=0.0)  # resumed runs included
        load_model_weights(parts.model, pick_checkpoint(run_dir, "best") / "model.safetensors")
        tok, test = parts.extras["tokenizer"], parts.extras["test"]
        result = evaluate_test(parts.model, tok, test, beam, cfg.data.length_penalty)
        speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
        rows.append({
            "model": name,
            "parameters": f"{sum(p.numel() for p in parts.model.parameters()) / 1e6:.1f}M",
            "steps": str(trainer.step),
            "training time": f"{train_seconds / 60:.1f} min",
            "train tokens/s": f"{statistics.median(speeds):,.0f}" if speeds else "-",
            "test BLEU": f"{result['bleu']:.2f}",
            "test chrF": f"{result['chrf']:.2f}",
            f"decoding (beam {beam}) sentences/s": f"{result['sentences_per_s']:.1f}",
        })
        examples.append(result["hypotheses"])
        signature = result["bleu_signature"]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    table = "\n".join(lines)
    test_pairs = parts.extras["test"].pairs
    shown = [f"- **source:** {test_pairs[i][0]}  \n  **reference:** {test_pairs[i][1]}  \n"  # Markdown line breaks
             f"  **RNN:** {examples[0][i]}  \n  **Transformer:** {examples[1][i]}" for i in range(0, len(test_pairs), max(1, len(test_pairs) // 10))][:10]
    report = (f"# Translation: RNN with attention vs Transformer ({Path(data_dir).name}, budget {budget} each)\n\n"
              f"{table}\n\nBLEU signature: {signature}\n\n## Ten held-out examples\n\n" + "\n".join(shown) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(report)
    print("\n" + report)
    return report
