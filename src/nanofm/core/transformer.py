"""Encoder and Decoder: stacks of TransformerBlocks, thin settings of one TransformerStack.

Encoder: bidirectional self-attention (BERT, ViT, CLIP's image tower, the translator's encoder).
Decoder: causal self-attention, plus cross-attention to a memory when cross_attention=True
(the translator's decoder) or without it (decoder-only language models, CLIP's text tower).

Legend: B batch, T length, S memory length, D model width, L layers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nanofm.core.block import BlockCache, TransformerBlock


def padding_mask_from_lengths(lengths: Tensor, max_len: int | None = None) -> Tensor:
    """lengths (B,) -> (B, T) bool, True at padding positions (right padding)."""
    t = int(lengths.max()) if max_len is None else max_len
    return torch.arange(t, device=lengths.device)[None, :] >= lengths[:, None]


class TransformerStack(nn.Module):
    def __init__(
        self,
        n_layers: int,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        act: str = "gelu",
        norm_first: bool = False,
        norm_eps: float = 1e-5,
        causal: bool = False,
        cross_attention: bool = False,
        context_dim: int | None = None,
        final_norm: bool | None = None,
        bias: bool = True,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.causal = causal
        # stochastic depth grows linearly with depth, from 0 at the first block to drop_path at the last (timm)
        rates = [drop_path * i / max(n_layers - 1, 1) for i in range(n_layers)]
        self.layers = nn.ModuleList(
            TransformerBlock(
                d_model, n_heads, d_ff, dropout, attn_dropout, act, norm_first, cross_attention, context_dim, norm_eps, bias,
                drop_path=rate,
            )  # fmt: skip
            for rate in rates
        )
        # pre-norm stacks end with a LayerNorm (their residual stream is never normalised otherwise)
        self.final_norm = nn.LayerNorm(d_model, eps=norm_eps) if (norm_first if final_norm is None else final_norm) else None

    def new_cache(self) -> list[BlockCache]:
        """Empty per-layer caches for step-by-step decoding."""
        return [BlockCache() for _ in self.layers]

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        padding_mask: Tensor | None = None,
        context_padding_mask: Tensor | None = None,
        attn_mask: Tensor | None = None,
        cache: list[BlockCache] | None = None,
        need_weights: bool = False,
    ) -> Tensor | tuple[Tensor, list[dict[str, Tensor | None]]]:
        """x (B, T, D) embedded inputs; context (B, S, Dc). With a cache, x holds only the new positions and
        padding_mask covers all positions so far. Returns (B, T, D), plus per-layer weights if need_weights.
        (Inference shortcuts of bidirectional stacks: core/fast.py.)"""
        all_weights = []
        for i, layer in enumerate(self.layers):
            x, weights = layer(
                x,
                context,
                attn_mask=attn_mask,
                padding_mask=padding_mask,
                is_causal=self.causal,
                context_padding_mask=context_padding_mask,
                cache=cache[i] if cache is not None else None,
                need_weights=need_weights,
            )
            all_weights.append(weights)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return (x, all_weights) if need_weights else x


class Encoder(TransformerStack):
    """Bidirectional stack: every position attends every non-padding position."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, **kwargs):
        super().__init__(n_layers, d_model, n_heads, d_ff, causal=False, cross_attention=False, **kwargs)


class Decoder(TransformerStack):
    """Causal stack, with cross-attention to an encoder memory unless cross_attention=False."""

    def __init__(self, n_layers: int, d_model: int, n_heads: int, d_ff: int, cross_attention: bool = True, **kwargs):
        super().__init__(n_layers, d_model, n_heads, d_ff, causal=True, cross_attention=cross_attention, **kwargs)
