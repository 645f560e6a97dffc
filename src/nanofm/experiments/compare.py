"""`nanofm compare translation`: the RNN baseline and the Transformer, same data, same wall-clock budget."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from nanofm.engine import load_model_weights
from nanofm.engine.checkpoint import pick_checkpoint
from nanofm.engine.config import format_duration
from nanofm.engine.run_folder import claim_run_folder
from nanofm.engine.tracking import read_metrics
from nanofm.experiments.timeshare import TimeShare
from nanofm.families.seq2seq.translation import evaluate_test, subset, translate_ids
from nanofm.tasks import build_task, fit_to_end, load_task_config, task_trainer

MODELS = (("RNN: GRU + additive attention", "rnn"), ("Transformer", "transformer"))


def decoding_cost(model, test, pad_id: int, beam: int, alpha: float, n: int, probe: int = 24) -> float:
    """Seconds to decode n test sentences, from `probe` of them decoded by this model now: untrained, it
    never stops before the length cap, so this is an upper bound of the trained model's cost."""
    sample = subset(test, probe)  # spread over the split, as long as its sentences on average
    t = time.perf_counter()
    translate_ids(model, sample.src, pad_id, beam=beam, alpha=alpha, max_len=model.cfg.max_len - 1)
    return (time.perf_counter() - t) * n / max(len(sample), 1)


def compare_translation(budget: str, data_dir: str, out: Path, rnn_config: str, transformer_config: str,
                        beam: int = 4, progress: bool = True, rnn_overrides: list[str] = (),
                        transformer_overrides: list[str] = (), fresh: bool = True, test_sentences: int | None = None,
                        deadline: float | None = None, test_max_tokens: int | None = None) -> str:
    """Train both models for `budget` each, translate the test split (or `test_sentences` of it, spread
    evenly) with each one's best checkpoint, and return (and write to out/table.md, numbers to table.json) a
    Markdown table; `test_max_tokens` keeps the test pairs of at most that many tokens a side. Runs go to out/translate-rnn and out/translate-transformer: retrained from nothing when
    `fresh`, else resumed (or kept, when finished). With a `deadline` (a time.time() value) the budget is
    what is left before it, shared between the models' training once the test decodings' cost (measured
    on each untrained model) is set aside: the comparison ends by the deadline."""
    configs = {"rnn": (rnn_config, rnn_overrides), "transformer": (transformer_config, transformer_overrides)}
    built, cost = {}, {}  # cost: seconds of each model's test decoding still to come (0 without a deadline)
    for _, key in MODELS:
        config, extra = configs[key]
        cfg = load_task_config(config, [f"train.budget={budget}", f"data.dir={data_dir}", *extra])
        parts = build_task(cfg)
        test = subset(parts.test_data, test_sentences, test_max_tokens)
        pad = parts.tokenizer.pad_id
        cost[key] = decoding_cost(parts.model, test, pad, beam, cfg.data.length_penalty, len(test)) if deadline else 0.0
        built[key] = (cfg, parts, test)
    rows, examples, numbers = {}, {}, {}  # by model key, whatever the training order
    share = TimeShare(deadline, [1.0] * len(MODELS), overhead=max(2.0, 0.03 * (deadline - time.time()))) \
        if deadline is not None else None
    # With a deadline the Transformer trains first: the time the RNN's decoding turns out not to need goes to
    # the RNN, so any unevenness of the shares favours the baseline, never the claim.
    order = MODELS[::-1] if deadline is not None else MODELS
    for i, (name, key) in enumerate(order):
        cfg, parts, test = built[key]
        run_dir = out / cfg.task
        if share is not None:  # this model's share of what is left, after every decoding still to come
            share.reserve = sum(cost[k] for _, k in order[i:])
            cfg.train.budget = format_duration(share.start())
        print(f"\n== {name}: {parts.describe}" + (f"; training {cfg.train.budget}" if deadline else ""))
        with claim_run_folder(run_dir, overwrite=fresh):  # retrained from nothing: only ever a run folder is cleared
            trainer = task_trainer(parts, cfg, run_dir, None if fresh else "auto", progress)
            fit_to_end(trainer, run_dir)
        if share is not None:
            share.finish()
        records = read_metrics(run_dir / "metrics.jsonl")
        train_seconds = max((r["elapsed"] for r in records if "elapsed" in r), default=0.0)  # resumed runs included
        load_model_weights(parts.model, pick_checkpoint(run_dir, "best") / "model.safetensors")
        tok = parts.tokenizer
        result = evaluate_test(parts.model, tok, test, beam, cfg.data.length_penalty, progress=progress)
        speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
        rows[key] = {
            "model": name,
            "parameters": f"{sum(p.numel() for p in parts.model.parameters()) / 1e6:.1f}M",
            "steps": str(trainer.step),
            "training time": f"{train_seconds / 60:.1f} min",
            "train tokens/s": f"{statistics.median(speeds):,.0f}" if speeds else "-",
            "test BLEU": f"{result['bleu']:.2f}",
            "test chrF": f"{result['chrf']:.2f}",
            f"decoding (beam {beam}) sentences/s": f"{result['sentences_per_s']:.1f}",
        }
        numbers[key] = {"model": key, "steps": trainer.step, "train_seconds": train_seconds, "bleu": result["bleu"],
                        "chrf": result["chrf"], "test_seconds": result["seconds"],
                        "test_seconds_estimated": cost[key] or None}
        if cost[key] > 0:  # an untrained model's bound overstates a trained one's cost: the next model's
            # bound is scaled by what this one really took (with a 30% margin)
            scale = min(1.0, 1.3 * result["seconds"] / cost[key])
            for _, k in order[i + 1:]:
                cost[k] *= scale
        examples[key] = result["hypotheses"]
        signature = result["bleu_signature"]
    rows, numbers = [rows[key] for _, key in MODELS], [numbers[key] for _, key in MODELS]
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r[h] for h in header) + " |" for r in rows]
    table = "\n".join(lines)
    test_pairs = test.pairs
    shown = [f"- **source:** {test_pairs[i][0]}  \n  **reference:** {test_pairs[i][1]}  \n"  # Markdown line breaks
             f"  **RNN:** {examples['rnn'][i]}  \n  **Transformer:** {examples['transformer'][i]}" for i in range(0, len(test_pairs), max(1, len(test_pairs) // 10))][:10]
    each = "the time left shared" if deadline else f"budget {budget} each"
    scope = f"{len(test_pairs):,} test sentences spread over the split" if test_sentences else f"all {len(test_pairs):,} test sentences"
    if test_max_tokens:
        scope += f" (those of at most {test_max_tokens} tokens a side)"
    report = (f"# Translation: RNN with attention vs Transformer ({Path(data_dir).name}, {each})\n\n"
              f"{table}\n\nBLEU on {scope}, beam {beam}; signature: {signature}\n\n## Ten held-out examples\n\n"
              + "\n".join(shown) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(report)
    (out / "table.json").write_text(json.dumps({"test_sentences": len(test_pairs), "beam": beam, "rows": numbers}, indent=1) + "\n")
    print("\n" + report)
    return report
