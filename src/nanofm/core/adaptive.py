"""Adaptive layer normalisation (FiLM-style conditioning of a Transformer, as in DiT, Peebles & Xie 2023).

A condition vector c (the diffusion timestep embedding, plus a class or CLIP embedding) sets a shift, a
scale and a gate per residual branch instead of the LayerNorm's learned affine parameters:

    h = LayerNorm(x) * (1 + scale(c)) + shift(c)          (AdaptiveLayerNorm)
    x = x + gate(c) * sublayer(h)                          (AdaLNZeroBlock, per branch)

adaLN-Zero initialises the modulation projection at zero, so every block starts as the identity (gate 0)
and the final layer outputs zero: the network starts from the trivial predictor and learns its way out.

Legend: B batch, T tokens, D model width, C condition width.
"""

from __future__ import annotations

from torch import Tensor, nn

from nanofm.core.attention import MultiHeadAttention
from nanofm.core.layers import FeedForward


def modulate(h: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """h (B, T, D) normalised; shift, scale (B, D) -> h * (1 + scale) + shift, per sample."""
    return h * (1 + scale[:, None, :]) + shift[:, None, :]


class AdaptiveLayerNorm(nn.Module):
    """LayerNorm without affine parameters, then a per-sample shift and scale projected from c (B, C).
    zero_init: the projection starts at zero (the plain LayerNorm)."""

    def __init__(self, d_model: int, cond_dim: int, eps: float = 1e-6, zero_init: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(d_model, eps=eps, elementwise_affine=False)
        self.proj = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 2 * d_model))
        if zero_init:
            nn.init.zeros_(self.proj[1].weight), nn.init.zeros_(self.proj[1].bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.proj(c).chunk(2, dim=-1)
        return modulate(self.norm(x), shift, scale)


class AdaLNZeroBlock(nn.Module):
    """DiT's block: pre-norm self-attention and feed-forward, each with an adaptive LayerNorm and a gated
    residual, all six modulations (shift, scale, gate for each branch) from one zero-initialised projection."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, cond_dim: int, dropout: float = 0.0,
                 attn_dropout: float = 0.0, act: str = "gelu_tanh", norm_eps: float = 1e-6):
        super().__init__()
        self.attn_norm = nn.LayerNorm(d_model, eps=norm_eps, elementwise_affine=False)
        self.attn = MultiHeadAttention(d_model, n_heads, attn_dropout)
        self.ff_norm = nn.LayerNorm(d_model, eps=norm_eps, elementwise_affine=False)
        self.ff = FeedForward(d_model, d_ff, act, dropout)
        self.dropout = nn.Dropout(dropout)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(cond_dim, 6 * d_model))
        nn.init.zeros_(self.modulation[1].weight), nn.init.zeros_(self.modulation[1].bias)

    def forward(self, x: Tensor, c: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        """x (B, T, D), c (B, C) -> (B, T, D)."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.modulation(c).chunk(6, dim=-1)  # each (B, D)
        h, _ = self.attn(modulate(self.attn_norm(x), shift1, scale1), padding_mask=padding_mask)
        x = x + gate1[:, None, :] * self.dropout(h)
        h = self.ff(modulate(self.ff_norm(x), shift2, scale2))
        return x + gate2[:, None, :] * self.dropout(h)
