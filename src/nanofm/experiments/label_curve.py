"""Score against the number of labels, pretrained against random weights: the picture of what a foundation model
is for (pretraining pays most where labels are scarce). The BETO and vision tables compute their curves with it.

A curve is {"metric": ..., "points": [{"labels": n, "pretrained": score, "scratch": score, "budget": "14s"}, ...]},
scores in percent, one fine-tuning run per point and start; both runs of a point train for the same time (its
"budget": the point's share of the time left, when a deadline shares it out)."""

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


def label_curve(counts: tuple[int, ...], run: Callable[[bool, int, str | None], float], metric: str,
                budget: Callable[[], str | None] = lambda: None, done: Callable[[], None] = lambda: None,
                known: dict[tuple[bool, int], tuple[float, str | None]] | None = None) -> dict:
    """run(from_scratch, labels, budget) -> score for each count and start, pretrained first. A point that makes
    both runs asks budget() once (the training time of each: None, the config's length) and calls done() after
    them, so that both starts of a point train alike. `known`: (score, budget) of runs made elsewhere with the
    same recipe (the table's own cells), not run again; the other start of such a point trains as long."""
    known = known or {}
    points = []
    for n in counts:
        todo = [s for s in (False, True) if (s, n) not in known]
        # a point with a known run trains its other start as long as that run
        length = budget() if len(todo) == 2 else next(known[(s, n)][1] for s in (False, True) if (s, n) in known)
        scores = {s: known[(s, n)][0] if (s, n) in known else run(s, n, length) for s in (False, True)}
        if len(todo) == 2:
            done()
        points.append({"labels": n, "pretrained": scores[False], "scratch": scores[True], "budget": length})
    return {"metric": metric, "points": points}


def format_label_curve(curve: dict, what: str) -> str:
    """The curve as a Markdown table: labels, both scores, the gain of pretraining."""
    lines = [f"| labelled examples ({what}) | pretrained, then fine-tuned | random weights | gain of pretraining "
             "| training time of each run |", "|---|---|---|---|---|"]
    for p in curve["points"]:
        lines.append(f"| {p['labels']:,} | {p['pretrained']:.2f} | {p['scratch']:.2f} | "
                     f"{p['pretrained'] - p['scratch']:+.2f} | {p.get('budget') or 'the config'} |")
    return "\n".join(lines) + "\n"
