"""Score against the number of labels, pretrained against random weights: the picture of what a foundation model
is for (pretraining pays most where labels are scarce). The BETO and vision tables compute their curves with it.

A curve is {"metric": ..., "points": [{"labels": n, "pretrained": score, "scratch": score}, ...]}, scores in
percent, one fine-tuning run per point and start, every run of one curve given the same training budget."""

from __future__ import annotations

from typing import Callable

from nanofm.config import ConfigError


def parse_counts(text: str) -> tuple[int, ...]:
    """"50,500,2000" -> (50, 500, 2000): increasing positive label counts."""
    try:
        counts = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"label counts must be comma-separated numbers, e.g. 50,500,2000; got {text!r}") from None
    if not counts or min(counts) < 1 or list(counts) != sorted(set(counts)):
        raise ConfigError(f"label counts must be positive and increasing, e.g. 50,500,2000; got {text!r}")
    return counts


def label_curve(counts: tuple[int, ...], run: Callable[[bool, int], float], metric: str,
                known: dict[tuple[bool, int], float] | None = None) -> dict:
    """run(from_scratch, labels) -> score for each count and start, pretrained first; `known` scores (runs made
    elsewhere with the same recipe and budget, e.g. the table's own cells) are not run again."""
    known = known or {}
    points = []
    for n in counts:
        pre = known[(False, n)] if (False, n) in known else run(False, n)
        scratch = known[(True, n)] if (True, n) in known else run(True, n)
        points.append({"labels": n, "pretrained": pre, "scratch": scratch})
    return {"metric": metric, "points": points}


def format_label_curve(curve: dict, what: str) -> str:
    """The curve as a Markdown table: labels, both scores, the gain of pretraining."""
    lines = [f"| labelled examples ({what}) | pretrained, then fine-tuned | random weights | gain of pretraining |",
             "|---|---|---|---|"]
    for p in curve["points"]:
        lines.append(f"| {p['labels']:,} | {p['pretrained']:.2f} | {p['scratch']:.2f} | "
                     f"{p['pretrained'] - p['scratch']:+.2f} |")
    return "\n".join(lines) + "\n"
