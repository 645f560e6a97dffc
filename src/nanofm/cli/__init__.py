"""`nanofm <command>`: a table of command groups, each a module owning its commands' arguments and calling
library functions (package: version, presets, config; train: train, pretrain, finetune, evaluate, info; use:
predict, fill-mask, classify, translate, generate, unclip, convert; data; experiments: demo, compare, benchmark).
The commands import the library inside their functions, so that `nanofm --help` answers without loading torch."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import traceback

from nanofm.cli import data, experiments, package, serve, train, use
from nanofm.config import ConfigError
from nanofm.errors import UserError
from nanofm.version import __version__

GROUPS = (experiments, package, train, use, serve, data)  # the order of `nanofm --help`


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
    for group in GROUPS:
        group.add(sub)
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
