"""Positional encodings: sinusoidal (Vaswani et al. 2017), learned absolute, ALiBi's distance bias on the
attention scores, 2-D sin-cos for image patches (MAE), and the sinusoidal timestep embedding of diffusion models.

Legend: B batch, T sequence length, D model width.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0) -> Tensor:
    """(n_positions, dim): PE[p, 2i] = sin(p / base^(2i/dim)), PE[p, 2i+1] = cos(p / base^(2i/dim))."""
    if dim % 2:
        raise ValueError(f"sinusoidal encodings need an even width, got {dim}")
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    table = torch.zeros(n_positions, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(pos * inv_freq)
    table[:, 1::2] = torch.cos(pos * inv_freq)
    return table.float()


def alibi_slopes(n_heads: int) -> Tensor:
    """(H,) ALiBi's head slopes (Press et al. 2022): the geometric sequence 2^(-8/H), 2^(-16/H), ..., 2^-8; for
    H not a power of 2, those of the power of 2 below it, then every other slope of the one above. Under 8
    heads, every (8/H)-th slope of the 8-head sequence 1/2 ... 1/256 instead, so that one head stays steep
    (ALiBi's own two slopes, 1/16 and 1/256, left a 2-head BERT on its plateau: docs/bert.md)."""
    def geometric(n: int) -> list[float]:
        return [2.0 ** (-8.0 * (i + 1) / n) for i in range(n)]

    if n_heads < 8:
        return torch.tensor([geometric(8)[i * 8 // n_heads] for i in range(n_heads)])
    low = 2 ** math.floor(math.log2(n_heads))
    return torch.tensor(geometric(low) + geometric(2 * low)[0::2][: n_heads - low])


def distance_bias(slopes: Tensor, t_q: int, t_k: int | None = None) -> Tensor:
    """(H, Tq, Tk) additive attention bias -slope_h * |i - j| (ALiBi, made symmetric for an encoder as in
    MosaicBERT): each head prefers nearby tokens, the steeper its slope the nearer."""
    t_k = t_q if t_k is None else t_k
    pos_q = torch.arange(t_q, device=slopes.device)
    pos_k = torch.arange(t_k, device=slopes.device)
    distance = (pos_q[:, None] - pos_k[None, :]).abs()  # (Tq, Tk)
    return -slopes[:, None, None] * distance


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sin/cos positions added to x (B, T, D); `offset` is the first position (cached decoding)."""

    def __init__(self, dim: int, max_len: int = 4096):
        super().__init__()
        self.register_buffer("table", sinusoidal_table(max_len, dim), persistent=False)

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        return x + _slice(self.table, x.size(1), offset).to(x.dtype)


class LearnedPositionalEmbedding(nn.Module):
    """A trained vector per absolute position (BERT, ViT, GPT), added to x (B, T, D)."""

    def __init__(self, dim: int, max_len: int = 512):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, dim).normal_(std=0.02))

    def forward(self, x: Tensor, offset: int = 0) -> Tensor:
        return x + _slice(self.weight, x.size(1), offset)


def _slice(table: Tensor, length: int, offset: int) -> Tensor:
    if offset + length > table.size(0):
        raise ValueError(f"position {offset + length - 1} exceeds max_len={table.size(0)}")
    return table[offset : offset + length]


def sincos_2d_table(dim: int, grid_h: int, grid_w: int) -> Tensor:
    """(grid_h * grid_w, dim) fixed 2-D positions, row-major patches: half the width encodes the row,
    half the column, each with the 1-D sin-cos of width dim/2 (as in MAE's get_2d_sincos_pos_embed)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos encodings need a width divisible by 4, got {dim}")
    rows = _sincos_1d(torch.arange(grid_h, dtype=torch.float64), dim // 2)  # (gh, D/2)
    cols = _sincos_1d(torch.arange(grid_w, dtype=torch.float64), dim // 2)  # (gw, D/2)
    grid = torch.cat(
        [rows[:, None, :].expand(grid_h, grid_w, -1), cols[None, :, :].expand(grid_h, grid_w, -1)], dim=-1
    )
    return grid.reshape(grid_h * grid_w, dim).float()


def _sincos_1d(pos: Tensor, dim: int) -> Tensor:
    """(N, dim): [sin(pos * w), cos(pos * w)] with w_i = 1 / 10000^(2i/dim), non-interleaved (MAE)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = pos[:, None] * omega[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class SinCos2DPositionalEmbedding(nn.Module):
    """Fixed 2-D sin-cos positions for a grid of image patches, added to x (B, gh*gw, D)."""

    def __init__(self, dim: int, grid_h: int, grid_w: int):
        super().__init__()
        self.register_buffer("table", sincos_2d_table(dim, grid_h, grid_w), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.table.to(x.dtype)


def timestep_features(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """(B,) diffusion timesteps (int or float) -> (B, dim) [cos | sin] features (as in DDPM / ADM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None, :]
    feats = torch.cat([angles.cos(), angles.sin()], dim=-1)
    return nn.functional.pad(feats, (0, dim % 2))


class TimestepEmbedding(nn.Module):
    """Diffusion timestep t (B,) -> (B, dim): sinusoidal features, then Linear-SiLU-Linear."""

    def __init__(self, dim: int, freq_dim: int = 256):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: Tensor) -> Tensor:
        return self.mlp(timestep_features(t, self.freq_dim))
