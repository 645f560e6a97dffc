"""Learning curves behind the 30-minute demo's recipe: one run per recipe variant, on the demo's own data
and budget, scored as the demo scores it. Each variant is a list of config overrides.

  python bench/demo_curves.py translation --budget 150s --model transformer --set train.batch_size=96
  python bench/demo_curves.py mlm --budget 4m --set train.lr=3e-3
  python bench/demo_curves.py vision-finetune --mae runs/demo/vision/mae --budget 40s --set train.lr=5e-4
  python bench/demo_curves.py vision-scratch --budget 110s --set model.pool=mean
  python bench/demo_curves.py vision-mae --budget 90s --finetune 20s --set train.batch_size=64
  python bench/demo_curves.py t2i-decoder --t2i runs/demo/t2i --budget 4m --set model.patch_size=8
  python bench/demo_curves.py clip --budget 100s --set model.image.n_layers=2

Prints the final figure (test BLEU on the demo's short test pairs; held-out masked accuracy; CLIP's caption
retrieval top-1 among 100 on the validation scenes; caption fidelity) and the eval
losses seen along the way; nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from nanofm.engine import load_model_weights
from nanofm.engine.checkpoint import pick_checkpoint
from nanofm.engine.tracking import read_metrics
from nanofm.experiments.demo_plan import DEMO, SHORT, TEST_SENTENCES
from nanofm.tasks import build_task, load_task_config
from nanofm.tasks import fit_to_end, task_trainer

CONFIGS = {"rnn": ("configs/translate-rnn-es-en.yaml", "translate-rnn"),
           "transformer": ("configs/translate-transformer-es-en.yaml", "translate-transformer"),
           "mlm": ("configs/bert-mini-mlm-es.yaml", "mlm"),
           "clip": ("configs/clip-scenes.yaml", "clip")}


def run(kind: str, budget: str, overrides: list[str], out: Path) -> dict:
    config, role = CONFIGS[kind]
    cfg = load_task_config(config, [*DEMO.get(role, []), f"train.budget={budget}", *overrides])
    parts = build_task(cfg)
    shutil.rmtree(out, ignore_errors=True)
    t = time.time()
    trainer = task_trainer(parts, cfg, out, None, False)
    fit_to_end(trainer, out)
    seconds = time.time() - t
    records = read_metrics(out / "metrics.jsonl")
    curve = [(r["step"], round(r["eval/loss"], 3)) for r in records if "eval/loss" in r]
    result = {"kind": kind, "budget": budget, "overrides": overrides, "steps": trainer.step,
              "train_seconds": round(seconds, 1), "eval_curve": curve}
    load_model_weights(parts.model, pick_checkpoint(out, "best") / "model.safetensors")
    if kind in ("rnn", "transformer"):
        from nanofm.families.seq2seq.translation import evaluate_test, subset

        test = subset(parts.test_data, TEST_SENTENCES["laptop"], SHORT)
        r = evaluate_test(parts.model, parts.tokenizer, test, 4, cfg.data.length_penalty)
        result.update(bleu=round(r["bleu"], 2), chrf=round(r["chrf"], 2), examples=r["hypotheses"][:500:50])
    else:
        result.update({k: v for k, v in records[-1].items() if k.startswith("eval/")} if records else {})
        accs = [r for r in records if "eval/accuracy" in r]
        result["accuracy_curve"] = [(r["step"], round(r["eval/accuracy"], 4)) for r in accs]
    return result


def finetune_vision(mae: Path, budget: str, overrides: list[str], out: Path) -> dict:
    """Fine-tune an MAE run on the demo's labelled subset, as the demo's vision part does (the from-scratch
    run's recipe, then `overrides`); test accuracy."""
    from nanofm.experiments.vision import mae_finetune_config, train_run
    from nanofm.experiments.demo_plan import LABELS

    scratch = load_task_config("configs/vit-fmnist.yaml", DEMO["vit"])
    cfg = mae_finetune_config(mae, scratch, False,
                              [f"data.labels={LABELS['laptop']['vision']}", f"train.budget={budget}", *overrides])
    shutil.rmtree(out, ignore_errors=True)
    r = train_run(cfg, out)
    return {"kind": "vision-finetune", "mae": str(mae), "budget": budget, "overrides": overrides,
            "steps": r["steps"], "test_accuracy": round(r["test_accuracy"], 4)}


def scratch_vision(budget: str, overrides: list[str], out: Path) -> dict:
    """Train the demo's ViT from scratch on its labelled subset, as the demo's vision part does (the config,
    the demo's ViT overrides, then `overrides`) for `budget`; test accuracy (all 10,000)."""
    from nanofm.experiments.vision import train_run
    from nanofm.experiments.demo_plan import LABELS

    cfg = load_task_config("configs/vit-fmnist.yaml", [*DEMO["vit"], f"data.labels={LABELS['laptop']['vision']}",
                                                       f"train.budget={budget}", *overrides])
    shutil.rmtree(out, ignore_errors=True)
    r = train_run(cfg, out)
    return {"kind": "vision-scratch", "budget": budget, "overrides": overrides, "steps": r["steps"],
            "test_accuracy": round(r["test_accuracy"], 4)}


def mae_vision(budget: str, finetune: str, overrides: list[str], out: Path, ft_overrides: list[str] = ()) -> dict:
    """Pretrain an MAE on the config with the demo's ViT overrides (which it applies to every run of the part),
    then `overrides`, for `budget`; fine-tune it on the demo's 200 labels for `finetune`; test accuracy (all
    10,000). The demo's MAE decoder (DEMO["mae"]) is not applied: pass it with --set to match the demo."""
    from nanofm.experiments.vision import train_run

    cfg = load_task_config("configs/mae-vit-fmnist.yaml", [*DEMO["vit"], f"train.budget={budget}", *overrides])
    shutil.rmtree(out, ignore_errors=True)
    r = train_run(cfg, out / "mae")
    ft = finetune_vision(out / "mae", finetune, list(ft_overrides), out / "finetune")
    return {"kind": "vision-mae", "budget": budget, "finetune": finetune, "overrides": overrides,
            "finetune_overrides": list(ft_overrides), "mae_steps": r["steps"], "finetune_steps": ft["steps"], "test_accuracy": ft["test_accuracy"]}


def decoder_t2i(t2i: Path, budget: str, overrides: list[str], out: Path) -> dict:
    """Train the diffusion decoder as the demo does (its overrides, then `overrides`) on a demo's CLIP run, pair
    it with that demo's prior, and score it as the demo does (200 one-item captions, DDIM 25 steps, the cached
    verifier)."""
    from nanofm.experiments.t2i import benchmark_t2i
    from nanofm.families.t2i.pipeline import write_unclip
    from nanofm.experiments.vision import train_run
    from nanofm.experiments.demo_plan import DATA, SAMPLING

    cfg = load_task_config("configs/decoder-scenes.yaml",
                           [*DEMO["decoder"], f"clip={t2i / 'clip'}", f"train.budget={budget}", *overrides])
    shutil.rmtree(out, ignore_errors=True)
    r = train_run(cfg, out / "decoder")
    write_unclip(out / "unclip", t2i / "prior", out / "decoder")
    n, steps = SAMPLING["laptop"]["n"], SAMPLING["laptop"]["steps"]
    table = benchmark_t2i(out / "unclip", Path("data") / f"{DATA['scenes']}-verifier", n=n, steps=steps, progress=False,
                          quick=True)
    rows = {row["measure"]: round(row["value"], 4) for row in table["rows"]}
    return {"kind": "t2i-decoder", "t2i": str(t2i), "budget": budget, "overrides": overrides, "steps": r["steps"],
            "fidelity": rows["caption fidelity, one item, seen combinations"],
            "notes": [row["note"] for row in table["rows"] if row["measure"].startswith("caption fidelity")]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=list(CONFIGS) + ["translation", "vision-scratch", "vision-finetune", "vision-mae",
                                                    "t2i-decoder"])
    p.add_argument("--finetune", default="20s", help="vision-mae: the fine-tune's budget")
    p.add_argument("--mae", type=Path, help="vision-finetune: the MAE run folder to fine-tune")
    p.add_argument("--t2i", type=Path, help="t2i-decoder: a demo's t2i folder (its clip and prior runs)")
    p.add_argument("--model", default="transformer", choices=["rnn", "transformer"])
    p.add_argument("--budget", default="150s")
    p.add_argument("--out", type=Path, default=Path("/tmp/demo-curves"))
    p.add_argument("--finetune-set", dest="ft_overrides", nargs="*", default=[],
                   help="vision-mae: config overrides of the fine-tune")
    p.add_argument("--set", dest="overrides", nargs="*", default=[], help="config overrides")
    a = p.parse_args()
    if a.kind == "vision-finetune":
        print(json.dumps(finetune_vision(a.mae, a.budget, a.overrides, a.out / a.kind)), flush=True)
        return
    if a.kind == "vision-scratch":
        print(json.dumps(scratch_vision(a.budget, a.overrides, a.out / a.kind)), flush=True)
        return
    if a.kind == "vision-mae":
        print(json.dumps(mae_vision(a.budget, a.finetune, a.overrides, a.out / a.kind, a.ft_overrides)), flush=True)
        return
    if a.kind == "t2i-decoder":
        print(json.dumps(decoder_t2i(a.t2i, a.budget, a.overrides, a.out / a.kind)), flush=True)
        return
    kind = a.model if a.kind == "translation" else a.kind
    print(json.dumps(run(kind, a.budget, a.overrides, a.out / kind), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
