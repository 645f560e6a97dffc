"""Batched image augmentations in plain torch, on float images x (B, C, H, W).

Each draws its randomness from an optional torch.Generator (on any device), so a seeded run repeats:

    x = normalize(batch.images, mean, std)                     # uint8 (B, C, H, W) -> float
    x = augment(x, AugmentConfig(crop_scale=(0.35, 1.0), flip=True), generator)

No Python loop over images: crops are one affine_grid + grid_sample, shifts one gather.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass
class AugmentConfig:
    crop_scale: tuple[float, float] | None = (0.8, 1.0)  # random resized crop: area fraction range (None: no crop)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # its aspect-ratio (width / height) range
    flip: bool = True  # horizontal flip with probability 0.5
    translate: int = 0  # random shift of up to this many pixels each way, zero fill (0: none)


def augment(x: Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> Tensor:
    """Crop, shift, then flip a batch (B, C, H, W) as `cfg` says."""
    if cfg.crop_scale is not None:
        x = random_resized_crop(x, cfg.crop_scale, cfg.crop_ratio, generator)
    if cfg.translate > 0:
        x = random_translate(x, cfg.translate, generator)
    if cfg.flip:
        x = random_flip(x, 0.5, generator)
    return x


def normalize(images: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """uint8 images (..., C, H, W) -> float32 (pixel / 255 - mean) / std, per channel."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(-1, 1, 1)
    return (images.float() / 255 - mean_t) / std_t


def random_resized_crop(x: Tensor, scale: tuple[float, float] = (0.35, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> Tensor:
    """Crop a random box from each image and resample it (bilinear) to the full size (B, C, H, W).

    As torchvision's RandomResizedCrop: the box covers a fraction of the area drawn from `scale` and has
    an aspect ratio (width / height) drawn log-uniformly from `ratio`; a side longer than the image is
    clamped to it (torchvision retries instead), and the box is placed uniformly inside the image.
    """
    b, _, h, w = x.shape
    area = _uniform(b, *scale, generator, x)
    aspect = torch.exp(_uniform(b, math.log(ratio[0]), math.log(ratio[1]), generator, x))
    box_w = (torch.sqrt(area * aspect * h / w)).clamp(max=1.0)  # (B,) box width as a fraction of W
    box_h = (torch.sqrt(area / aspect * w / h)).clamp(max=1.0)
    center_x = (1 - box_w) * _uniform(b, -1.0, 1.0, generator, x)  # in grid coordinates [-1, 1]
    center_y = (1 - box_h) * _uniform(b, -1.0, 1.0, generator, x)
    zero = torch.zeros_like(box_w)
    theta = torch.stack([torch.stack([box_w, zero, center_x], -1), torch.stack([zero, box_h, center_y], -1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)  # (B, H, W, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_flip(x: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Mirror each image left-right with probability p."""
    flip = _uniform(x.size(0), 0.0, 1.0, generator, x) < p  # (B,)
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def random_translate(x: Tensor, max_shift: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image by up to max_shift pixels in each direction, filling with zeros (pad + random crop)."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator,
                            device=generator.device if generator is not None else x.device).to(x.device)
    rows = offsets[0, :, None] + torch.arange(h, device=x.device)  # (B, H)
    cols = offsets[1, :, None] + torch.arange(w, device=x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, :, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C): advanced dims come first
    return out.permute(0, 3, 1, 2).contiguous()


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """(n,) float32 uniform in [low, high), drawn on the generator's device, returned on like's."""
    device = generator.device if generator is not None else like.device
    return (low + (high - low) * torch.rand(n, generator=generator, device=device)).to(like.device)
