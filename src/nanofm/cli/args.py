"""Argument types shared by the command groups."""

from __future__ import annotations

import argparse

from nanofm.config import ConfigError


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def duration(text: str) -> str:
    """A budget as written (20m, 90s, 1h30m), checked here so that a bad one is a usage error."""
    from nanofm.engine.config import parse_duration

    try:
        parse_duration(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def label_counts(text: str) -> tuple[int, ...]:
    """A label curve's counts (50,500,2000), checked here so that a bad list is a usage error."""
    from nanofm.experiments.label_curve import parse_counts

    try:
        return parse_counts(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
