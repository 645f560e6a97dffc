"""Attention maps as heatmaps over source (columns) and target (rows) tokens, as in the lecture's figures."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor


def plot_attention(src_tokens: list[str], tgt_tokens: list[str], maps: Tensor, path: str | Path,
                   title: str = "", layer: int = -1) -> Path:
    """maps (L, H, T, S): one panel per head of `layer` (a single panel for one head, e.g. the RNN's
    attention), plus the mean over heads when there are several. Written as a PNG."""
    from matplotlib.figure import Figure

    heads = maps[layer].float().cpu()  # (H, T, S)
    panels = [(f"head {h + 1}", heads[h]) for h in range(heads.size(0))]
    if len(panels) > 1:
        panels.append(("mean of heads", heads.mean(0)))
    cols = min(len(panels), 3)
    rows = (len(panels) + cols - 1) // cols
    cell = 0.32
    w = max(4.0, cell * len(src_tokens) + 1.5)
    h = max(3.0, cell * len(tgt_tokens) + 1.2)
    fig = Figure(figsize=(w * cols, h * rows), dpi=100)
    for i, (name, m) in enumerate(panels):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(m.numpy(), cmap="viridis", vmin=0.0, vmax=float(m.max()) or 1.0, aspect="auto")
        ax.set_xticks(range(len(src_tokens)), [t.replace("▁", "_") for t in src_tokens], rotation=90, fontsize=8)
        ax.set_yticks(range(len(tgt_tokens)), [t.replace("▁", "_") for t in tgt_tokens], fontsize=8)
        ax.set_xlabel("source")
        ax.set_ylabel("target")
        ax.set_title(name if len(panels) > 1 else (title or name), fontsize=9)
    if title and len(panels) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
