"""`nanofm` commands, the lecture's experiments: demo, compare, benchmark."""

from __future__ import annotations

import argparse
from pathlib import Path


from nanofm.cli.args import duration, label_counts, positive_int


def add(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `nanofm` parser."""
    p = sub.add_parser(
        "demo", help="the lecture end to end (translation, Spanish BERT, ViT + MAE, text to image) and a report",
        description="Prepares missing data (and, once, the text-to-image verifier), probes the machine's speed, then "
        "runs four parts, each ending by its share of the budget: the RNN against the Transformer for translation, "
        "Spanish BERT pretraining with fill-mask and the BETO-style table on a few labels, the ViT with and without "
        "MAE pretraining on a few labels, and text to image (CLIP, prior, decoder). Writes OUT/report.html "
        "(self-contained) and OUT/report.md, which open with each claim of the lecture, its figure and a verdict "
        "(also in OUT/claims.json). Rerunning it skips finished parts and resumes an interrupted one.",
    )
    p.add_argument("--budget", default="30m", type=duration,
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

    p = sub.add_parser("compare", help="train competing models under one budget and print a results table")
    cmp_sub = p.add_subparsers(dest="comparison", metavar="COMPARISON", required=True)
    q = cmp_sub.add_parser(
        "translation",
        help="the GRU-with-attention baseline against the Transformer, same data, same wall-clock budget",
    )
    q.add_argument("--budget", default="20m", type=duration, help="training time for EACH model (default 20m)")
    q.add_argument("--data", default="data/translation-es-en", help="prepared data folder")
    q.add_argument("--out", default="runs/compare-translation", help="folder for both runs and table.md")
    q.add_argument("--rnn-config", default="translate-rnn-es-en", help="a config file, or a shipped config's name")
    q.add_argument("--transformer-config", default="translate-transformer-es-en", help="a config file, or a shipped config's name")
    q.add_argument("--beam", type=positive_int, default=4, help="beam size for the test translations (default 4)")
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
    length.add_argument("--budget", type=duration,
                        help="instead of --epochs: wall-clock budget of EACH fine-tuning run (e.g. 3m)")
    q.add_argument("--seeds", type=positive_int, default=1,
                   help="fine-tuning runs per cell, their scores averaged (default 1; make bench-beto uses 3)")
    q.add_argument("--out", default="runs/benchmark-beto", help="folder for the runs, table.md and table.json")
    q.add_argument("--label-curve", metavar="COUNTS", type=label_counts,
                   help="also a label curve: the first run against random weights at these numbers of labelled "
                   "examples (e.g. 50,500,2000), each run with the table's recipe, on --curve-task")
    q.add_argument("--curve-task", help="the label curve's task (default: the first of --tasks)")
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
    q.add_argument("--budget", default="30m", type=duration, help="total training time of each column (default 30m)")
    q.add_argument("--pretrain-share", type=float, default=0.5, help="share of the budget spent on MAE pretraining (default 0.5)")
    q.add_argument("--probe-budget", default="3m", type=duration, help="training time of the linear probe (default 3m)")
    q.add_argument("--labels", type=positive_int, default=None,
                   help="labelled training images the supervised runs see (default: all); MAE pretrains on all, unlabelled")
    q.add_argument("--scratch-config", default="vit-fmnist", help="the from-scratch run config (a file or a shipped name)")
    q.add_argument("--mae-config", default="mae-vit-fmnist", help="the MAE pretraining run config (a file or a shipped name)")
    q.add_argument("--out", default="runs/benchmark-vision", help="folder for the runs, table.md and table.json")
    q.add_argument("--label-curve", metavar="COUNTS", type=label_counts,
                   help="also a label curve: MAE + fine-tune against from scratch at these numbers of labelled images "
                   "(e.g. 50,500,5000), every run trained for the fine-tune's budget")
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
    q.add_argument("-n", type=positive_int, default=200, help="captions per one-item set (half as many two-item; default 200)")
    q.add_argument("--steps", type=positive_int, default=50, help="DDIM steps of the decoder (default 50)")
    q.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (default 3)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--fmnist", default="data/fashion-mnist", help="Fashion-MNIST for zero-shot (prepared folder or IDX files)")
    q.add_argument("--out", default="runs/benchmark-t2i", help="folder for table.md and table.json")
    q.add_argument("--no-progress", action="store_true", help="no progress bars")
    q.set_defaults(func=cmd_benchmark_t2i)


def cmd_demo(args: argparse.Namespace) -> None:
    from nanofm.experiments.demo import PARTS, Demo, run_demo

    only = tuple(p for p in args.only.split(",") if p) if args.only else PARTS
    configs = {} if args.configs is None else {"configs": Path(args.configs)}
    run_demo(Demo(budget=args.budget, out=Path(args.out), data=Path(args.data), only=only, preset=args.preset,
                  progress=not args.no_progress, **configs))


def cmd_compare(args: argparse.Namespace) -> None:
    from nanofm.experiments.compare import compare_translation

    compare_translation(args.budget, args.data, Path(args.out), args.rnn_config, args.transformer_config,
                        beam=args.beam, progress=not args.no_progress)


def cmd_benchmark_beto(args: argparse.Namespace) -> None:
    from nanofm.experiments.beto import benchmark_beto, format_table

    tasks = [t for t in args.tasks.split(",") if t]
    length = [f"train.budget={args.budget}"] if args.budget else [f"train.epochs={args.epochs:g}"]
    result = benchmark_beto(args.run_dirs, args.tasks_dir, tasks, args.out, [*length, *args.overrides],
                            seeds=args.seeds, curve=args.label_curve or (), curve_task=args.curve_task)
    print(format_table(result), end="")
    print(f"written to {Path(args.out) / 'table.md'} and table.json")


def cmd_benchmark_vision(args: argparse.Namespace) -> None:
    from nanofm.experiments.vision import benchmark_vision, format_vision_table

    result = benchmark_vision(args.scratch_config, args.mae_config, args.budget, args.out, args.pretrain_share,
                              args.probe_budget, args.overrides, labels=args.labels, curve=args.label_curve or ())
    print(format_vision_table(result), end="")
    print(f"written to {Path(args.out) / 'table.md'} and table.json")


def cmd_benchmark_t2i(args: argparse.Namespace) -> None:
    from nanofm.experiments.t2i import benchmark_t2i, format_t2i_table

    result = benchmark_t2i(args.run_dir, args.verifier, n=args.n, steps=args.steps, guidance=args.guidance,
                           seed=args.seed, fmnist=args.fmnist, out=args.out, progress=not args.no_progress)
    print(format_t2i_table(result), end="")
    print(f"written to {Path(args.out) / 'table.md'} and table.json ({result['seconds']:.0f}s)")
