"""Feed-forward layer, patches (patchify / unpatchify), patch embedding and stochastic depth (DropPath).

Legend: B batch, T tokens, D model width, F feed-forward width, C channels, P patch size.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,  # exact erf GELU (BERT, ViT)
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2
    "quick_gelu": lambda x: x * (1.702 * x).sigmoid(),  # OpenAI CLIP
    "silu": F.silu,
}


def activation(name: str) -> Callable[[Tensor], Tensor]:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class FeedForward(nn.Module):
    """Position-wise Linear(D->F) -> activation -> dropout -> Linear(F->D), on (B, T, D)."""

    def __init__(self, d_model: int, d_ff: int, act: str = "gelu", dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_ff, bias=bias)
        self.fc2 = nn.Linear(d_ff, d_model, bias=bias)
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.dropout(self.act(self.fc1(x))))


def patchify(images: Tensor, p: int) -> Tensor:
    """images (B, C, H, W) -> patches (B, N, Q): patches row-major (PatchEmbedding's token order), each
    patch's pixels row by row with the channels last (MAE's order)."""
    b, c, h, w = images.shape
    if h % p or w % p:
        raise ValueError(f"image {h}x{w} is not divisible into {p}x{p} patches")
    x = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, P, gw, P)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(patches: Tensor, p: int, channels: int, height: int | None = None, width: int | None = None) -> Tensor:
    """patches (B, N, Q) -> images (B, C, H, W); the inverse of patchify. H and W default to a square."""
    b, n, _ = patches.shape
    if height is None and width is None:
        height = width = math.isqrt(n) * p
    gh, gw = (height or 0) // p, (width or 0) // p
    if gh * gw != n:
        raise ValueError(f"{n} patches of {p}x{p} do not tile a {height}x{width} image")
    x = patches.reshape(b, gh, gw, p, p, channels)  # (B, gh, gw, P, P, C)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, channels, gh * p, gw * p)


class PatchEmbedding(nn.Module):
    """Image (B, C, H, W) -> patch tokens (B, H/P * W/P, D), row-major: a stride-P convolution (its weights
    are `proj`, as in timm and Hugging Face), computed as a matmul on the flattened patches."""

    def __init__(self, image_size: int, patch_size: int, in_channels: int, d_model: int):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} is not divisible by patch_size={patch_size}")
        self.grid = image_size // patch_size
        self.proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)

    @property
    def n_patches(self) -> int:
        return self.grid * self.grid

    def forward(self, images: Tensor) -> Tensor:
        # Patches do not overlap (stride = kernel): the convolution is one matmul on the flattened patches,
        # the same arithmetic, and on CPU 4x faster forward + backward (bench/NOTES.md).
        w = self.proj.weight.permute(0, 2, 3, 1).reshape(self.proj.out_channels, -1)  # (D, P*P*C), patchify's order
        return F.linear(patchify(images, self.proj.kernel_size[0]), w, self.proj.bias)  # (B, g*g, D)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016, as in timm): in training, zero a residual branch's output for a
    random `p` of the samples and scale the rest by 1/(1-p); the identity in eval mode. x (B, ...)."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty(x.size(0), *(1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)
