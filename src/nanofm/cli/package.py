"""`nanofm` commands, the package itself: version, presets, config."""

from __future__ import annotations

import argparse
import sys

from nanofm.version import __version__


def add(sub: argparse._SubParsersAction) -> None:
    """Add this group's commands to the `nanofm` parser."""
    p = sub.add_parser("version", help="print the nanofm, torch and python versions")
    p.set_defaults(func=cmd_version)

    p = sub.add_parser("presets", help="list the named model presets")
    p.add_argument("--family", help="only this family (e.g. encoder-decoder)")
    p.set_defaults(func=cmd_presets)

    p = sub.add_parser("config", help="print a preset's full config as YAML, with overrides applied")
    p.add_argument("preset", help="a preset name (see `nanofm presets`)")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE", help="dotted overrides, e.g. d_model=128")
    p.set_defaults(func=cmd_config)


def cmd_version(args: argparse.Namespace) -> None:
    import torch

    print(f"nanofm {__version__} (torch {torch.__version__}, python {sys.version.split()[0]})")


def cmd_presets(args: argparse.Namespace) -> None:
    from nanofm.families import presets

    rows = presets(args.family)
    width = max(len(p.name) for p in rows)
    fam_width = max(len(p.family) for p in rows)
    for p in rows:
        print(f"{p.name:<{width}}  {p.family:<{fam_width}}  {p.description}")


def cmd_config(args: argparse.Namespace) -> None:
    from nanofm.config import apply_overrides, from_dict, to_dict, to_yaml
    from nanofm.families import get_preset

    preset = get_preset(args.preset)
    data, origins = to_dict(preset.config), {"": f"preset {args.preset!r}"}
    apply_overrides(data, args.overrides, origins)
    print(to_yaml(from_dict(type(preset.config), data, origins)), end="")
