"""Loss curves from a run's metrics records."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_loss_curve(records: list[dict[str, Any]], path: Path, title: str = "") -> Path:
    """Training loss (and eval loss, if logged) against optimizer step, written as a PNG."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    evals = [(r["step"], r["eval/loss"]) for r in records if "eval/loss" in r]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), label="train loss", lw=1.2)
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss", lw=1.2, ms=4)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    if train and min(v for _, v in train) > 0:
        ax.set_yscale("log")
    return _save(fig, ax, title, path)


def plot_label_curve(points: list[dict[str, float]], path: Path, metric: str, title: str = "") -> Path:
    """Score against the number of labelled examples (log scale), pretrained against random weights: points are
    {"labels": n, "pretrained": score, "scratch": score}."""
    from matplotlib.figure import Figure  # no pyplot: leaves the user's backend alone

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.add_subplot()
    n = [p["labels"] for p in points]
    ax.plot(n, [p["pretrained"] for p in points], "o-", label="pretrained, then fine-tuned", lw=1.5)
    ax.plot(n, [p["scratch"] for p in points], "s--", label="random weights, same training", lw=1.5)
    ax.set_xscale("log")
    ax.set_xticks(n, [str(v) for v in n])
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel(metric)
    return _save(fig, ax, title, path)


def _save(fig: Any, ax: Any, title: str, path: Path) -> Path:
    """Grid, legend and title, then the PNG."""
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
