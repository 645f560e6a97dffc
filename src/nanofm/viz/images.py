"""Pictures for vision models: MAE reconstructions, attention rollout overlays, confusion matrices.

Images are (N, C, H, W) floats in [0, 1] (C = 1 or 3); every function writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor


def _show(ax, image: Tensor, title: str = "", interpolation: str | None = None) -> None:
    """image (C, H, W) in [0, 1], grey or RGB, on a bare axis."""
    img = image.detach().float().clamp(0, 1).cpu()
    if img.size(0) == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation=interpolation)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy(), interpolation=interpolation)
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def plot_reconstructions(originals: Tensor, masked: Tensor, reconstructed: Tensor, path: str | Path,
                         title: str = "") -> Path:
    """Three rows (original, what the encoder saw, reconstruction), one column per image."""
    from matplotlib.figure import Figure

    n = originals.size(0)
    fig = Figure(figsize=(1.2 * n + 1.2, 4.0), dpi=100)
    rows = (("original", originals), ("masked", masked), ("reconstruction", reconstructed))
    for r, (name, images) in enumerate(rows):
        for i in range(n):
            ax = fig.add_subplot(3, n, r * n + i + 1)
            _show(ax, images[i])
            if i == 0:
                ax.set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def attention_rollout(maps: Sequence[Tensor], has_cls: bool = True) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): per layer, the head-mean attention plus the identity (the
    residual path), rows renormalised, multiplied through the layers. maps: one (B, H, T, T) per layer.
    Returns (B, N) over the N patch tokens: what the [CLS] token (or, without one, the mean token) draws on."""
    joint = None
    for a in maps:
        a = a.float().mean(1)  # (B, T, T)
        a = a + torch.eye(a.size(-1), device=a.device)
        a = a / a.sum(-1, keepdim=True)
        joint = a if joint is None else a @ joint
    if has_cls:
        return joint[:, 0, 1:]  # (B, N)
    return joint.mean(1)


def plot_attention_overlays(images: Tensor, rollout: Tensor, path: str | Path, captions: Sequence[str] = (),
                            title: str = "") -> Path:
    """Each image beside its rollout map (B, N), upsampled to the image and laid over it."""
    from matplotlib.figure import Figure

    n = images.size(0)
    grid = int(round(rollout.size(1) ** 0.5))
    heat = rollout.reshape(n, 1, grid, grid)
    heat = torch.nn.functional.interpolate(heat, size=images.shape[-2:], mode="bilinear", align_corners=False)
    heat = heat / heat.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
    fig = Figure(figsize=(1.6 * n + 0.6, 3.6), dpi=100)
    for i in range(n):
        top = fig.add_subplot(2, n, i + 1)
        _show(top, images[i], captions[i] if i < len(captions) else "")
        bottom = fig.add_subplot(2, n, n + i + 1)
        _show(bottom, images[i])
        bottom.imshow(heat[i, 0].numpy(), cmap="inferno", alpha=0.6, vmin=0, vmax=1)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def confusion_matrix(preds: Tensor, targets: Tensor, n_classes: int) -> Tensor:
    """(n_classes, n_classes) counts: rows the true class, columns the predicted one."""
    index = targets.long() * n_classes + preds.long()
    return torch.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def plot_confusion_matrix(matrix: Tensor, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Row-normalised confusion matrix with the counts written in the cells."""
    from matplotlib.figure import Figure

    m = matrix.float()
    norm = m / m.sum(1, keepdim=True).clamp_min(1)
    k = len(classes)
    fig = Figure(figsize=(0.6 * k + 2.5, 0.6 * k + 2.0), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(norm.numpy(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(k), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    acc = float(m.diag().sum() / m.sum().clamp_min(1))
    ax.set_title(f"{title}  accuracy {acc:.2%}".strip(), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
