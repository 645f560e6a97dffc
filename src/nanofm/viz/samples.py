"""Pictures of generated images: a grid of samples under their caption, and rows of images to compare.

Images are (N, C, H, W) floats in [0, 1]; every function writes one PNG and returns its path.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

from torch import Tensor

from nanofm.viz.images import _show


def plot_sample_grid(images: Tensor, path: str | Path, caption: str = "", ncols: int | None = None,
                     labels: Sequence[str] = ()) -> Path:
    """The images in a grid (about square), with the caption on top and an optional label under each."""
    from matplotlib.figure import Figure

    n = images.size(0)
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(1.5 * ncols + 0.4, 1.5 * nrows + (0.5 if caption else 0.1)), dpi=100)
    for i in range(n):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        _show(ax, images[i], interpolation="nearest")  # small images: crisp pixels
        if i < len(labels):
            ax.set_xlabel(labels[i], fontsize=7)
    if caption:
        fig.suptitle(caption, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def plot_image_rows(rows: Sequence[Tensor], row_names: Sequence[str], column_titles: Sequence[str], path: str | Path,
                    title: str = "") -> Path:
    """One row per tensor of images (all of the same count), a title over each column."""
    from matplotlib.figure import Figure

    n = rows[0].size(0)
    titles = [textwrap.fill(t, 22) for t in column_titles]  # long captions on several lines
    lines = max((t.count("\n") + 1 for t in titles), default=0)
    fig = Figure(figsize=(1.6 * n + 1.0, 1.6 * len(rows) + 0.5 + 0.15 * lines), dpi=100)
    for r, (images, name) in enumerate(zip(rows, row_names)):
        for i in range(n):
            ax = fig.add_subplot(len(rows), n, r * n + i + 1)
            _show(ax, images[i], interpolation="nearest")  # small images: crisp pixels
            if i == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0 and i < len(column_titles):
                ax.set_title(titles[i], fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
