"""`nanofm` commands, training: train, pretrain, finetune, evaluate, info."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from nanofm.cli.args import duration
from nanofm.config import ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `nanofm` parser."""
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

    p = sub.add_parser("evaluate", help="evaluate a run's best (or latest) checkpoint on its task's held-out data")
    p.add_argument("run_dir", help="a run folder written by `nanofm train`")
    p.add_argument("--checkpoint", default="best", help="best, latest, or a checkpoint folder (default: best)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("info", help="show a run's config, checkpoints and last metrics")
    p.add_argument("run_dir", help="a run folder written by `nanofm train`")
    p.set_defaults(func=cmd_info)


def cmd_train(args: argparse.Namespace) -> None:
    from nanofm.tasks import load_task_config

    cfg = load_task_config(args.config, _train_overrides(args))
    _run_training(cfg, Path(args.out) if args.out else Path("runs") / Path(args.config).stem, args)


def cmd_finetune(args: argparse.Namespace) -> None:
    from nanofm.config import apply_overrides, from_dict
    from nanofm.interop import is_hf_folder
    from nanofm.runs import open_run
    from nanofm.families.bert.finetune import FinetuneTaskConfig, finetune_config

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
    from nanofm.families.vit.task import ImageClassifyTaskConfig, vision_finetune_config

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
    from nanofm.tasks import finish_run, task_trainer
    from nanofm.engine import distributed
    from nanofm.engine.run_folder import claim_run_folder

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
                report = parts.report(parts.model, parts.eval_data, metrics) if parts.report is not None and metrics else None
                if report:
                    print(report)
                finish_run(trainer, run_dir, report)
                if parts.pictures is not None:
                    for path in parts.pictures(parts.model, run_dir):
                        print(f"picture: {path}")
                skipped = f", {trainer.skipped_steps} skipped (non-finite)" if trainer.skipped_steps else ""
                print(f"done: {trainer.step} steps{skipped} | checkpoints in {run_dir / 'checkpoints'} "
                      f"| metrics {run_dir / 'metrics.jsonl'} | loss curve {run_dir / 'loss_curve.png'}")
    distributed.cleanup()
    if trainer.stop_signal:  # saved and stopped: exit as a killed process would, so that schedulers see it
        raise SystemExit(130 if trainer.stop_signal == "SIGINT" else 143)


def _count(model) -> str:
    n = sum(p.numel() for p in model.parameters())
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _add_train_arguments(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument("config", help=f"run config, e.g. {example}")
    _add_run_options(p, "runs/<config name>")
    p.set_defaults(func=cmd_train)


def _add_run_options(p: argparse.ArgumentParser, default_out: str) -> None:
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="dotted overrides, e.g. train.steps=600 train.lr=1e-4")
    p.add_argument("--out", help=f"run folder (default: {default_out})")
    p.add_argument("--resume", metavar="auto|CHECKPOINT", help="auto: continue from the newest complete checkpoint, if any")
    p.add_argument("--budget", metavar="DURATION", type=duration,
                   help="wall-clock budget (20m, 90s, 1h30m): the schedule ends when it is spent")
    p.add_argument("--overwrite", action="store_true", help="start over: empty the run folder first (only a nanofm run folder)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from nanofm.tasks import build_task, open_trained
    from nanofm.engine import evaluate_model
    from nanofm.engine.distributed import setup

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
    from nanofm.engine import checkpoint as ckpt_io
    from nanofm.engine.tracking import read_metrics

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
