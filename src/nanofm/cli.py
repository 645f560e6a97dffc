"""`nanofm <command>`: parses arguments, then calls library functions."""

from __future__ import annotations

import argparse
import sys

from nanofm import __version__
from nanofm.config import ConfigError

OVERRIDES_HELP = "dotted overrides of the config, e.g. model.d_model=128 steps=500"


def cmd_version(args: argparse.Namespace) -> None:
    import torch

    print(f"nanofm {__version__} (torch {torch.__version__}, python {sys.version.split()[0]})")


def cmd_presets(args: argparse.Namespace) -> None:
    from nanofm.registry import presets

    rows = presets(args.family)
    width = max(len(p.name) for p in rows)
    fam_width = max(len(p.family) for p in rows)
    for p in rows:
        print(f"{p.name:<{width}}  {p.family:<{fam_width}}  {p.description}")


def cmd_config(args: argparse.Namespace) -> None:
    from nanofm.config import apply_overrides, from_dict, to_dict, to_yaml
    from nanofm.registry import get_preset

    preset = get_preset(args.preset)
    data, origins = to_dict(preset.config), {"": f"preset {args.preset!r}"}
    apply_overrides(data, args.overrides, origins)
    print(to_yaml(from_dict(type(preset.config), data, origins)), end="")


def cmd_copy(args: argparse.Namespace) -> None:
    from nanofm.config import load_config, to_yaml
    from nanofm.tasks.copy import CopyTaskConfig, build_model, train_copy

    cfg = load_config(CopyTaskConfig, args.config, args.overrides)
    if args.print_config:
        print(to_yaml(cfg), end="")
    model = build_model(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"copy task: encoder-decoder with {n_params / 1e3:.1f}k parameters, sequences of {cfg.min_len}-{cfg.max_len} "
        f"tokens over {cfg.model.vocab_size - 3} symbols, {cfg.steps} steps of {cfg.batch_size}"
    )
    result = train_copy(cfg, model, progress=not args.no_progress)
    print(
        f"held-out accuracy on {cfg.eval_size} sequences (greedy decoding): "
        f"tokens {100 * result.token_accuracy:.2f}%, whole sequences {100 * result.sequence_accuracy:.2f}% "
        f"| final loss {result.final_loss:.4f} | {result.seconds:.1f}s"
    )
    for src, out in result.samples:
        mark = "ok" if src == out else "WRONG"
        print(f"  {' '.join(map(str, src))}  ->  {' '.join(map(str, out))}  [{mark}]")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanofm",
        description="nanofm: pretrain and adapt small foundation models on one shared Transformer core.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("version", help="print the nanofm, torch and python versions")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("presets", help="list the named model presets")
    p.add_argument("--family", help="only this family (e.g. encoder-decoder)")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("config", help="print a preset's full config as YAML, with overrides applied")
    p.add_argument("preset", help="a preset name (see `nanofm presets`)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides, e.g. d_model=128")
    p.set_defaults(func=cmd_config)

    p = sub.add_parser(
        "copy",
        help="train a tiny encoder-decoder to copy random sequences; print held-out accuracy",
        description="Train the Transformer encoder-decoder on the copy task and report greedy-decoding "
        "accuracy on held-out random sequences. Without a config file, the defaults are used.",
    )
    p.add_argument("config", nargs="?", help="YAML or JSON config (e.g. configs/copy-tiny.yaml)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)
    p.add_argument("--print-config", action="store_true", help="print the resolved config first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_copy)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # `nanofm copy steps=10` (no file): the first positional is an override, not a config path
    if getattr(args, "config", None) and "=" in args.config:
        args.overrides.insert(0, args.config)
        args.config = None
    try:
        args.func(args)
    except (ConfigError, KeyError) as e:
        print(f"nanofm: error: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
