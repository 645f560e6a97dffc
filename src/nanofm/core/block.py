"""TransformerBlock: self-attention, optional cross-attention and a feed-forward layer, each wrapped in a
residual connection with LayerNorm. Post-norm (original Transformer, BERT) and pre-norm (ViT, CLIP) are
one flag:
  post-norm (norm_first=False):  x = norm(x + dropout(sublayer(x)))
  pre-norm  (norm_first=True):   x = x + dropout(sublayer(norm(x)))
With drop_path > 0 (stochastic depth, ViT/DeiT), each residual branch is also dropped per sample in training.

Encoder fast paths (see attention.py): `layout` runs every projection, norm and feed-forward on the packed
real tokens (N, D) of a padded batch; `query_positions` computes the block's outputs only at those
positions (the residual stream, attention output and feed-forward are sliced; keys and values use all).

Legend: B batch, T target length, S context (memory) length, D model width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor, nn

from nanofm.core.attention import KVCache, MultiHeadAttention
from nanofm.core.layers import DropPath, FeedForward


@dataclass
class BlockCache:
    """The key/value caches of one block during step-by-step decoding."""

    self_attn: KVCache = field(default_factory=KVCache)
    cross_attn: KVCache = field(default_factory=KVCache)

    def reorder(self, index: Tensor, cross: bool = True) -> None:
        """Select batch rows; cross=False keeps the cross-attention cache (rows of one source only swap)."""
        self.self_attn.reorder(index)
        if cross:
            self.cross_attn.reorder(index)


class TransformerBlock(nn.Module):
    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        attn_dropout: float = 0.0,
        act: str = "gelu",
        norm_first: bool = False,
        cross_attention: bool = False,
        context_dim: int | None = None,
        norm_eps: float = 1e-5,
        bias: bool = True,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, n_heads, attn_dropout, bias)
        self.self_attn_norm = nn.LayerNorm(d_model, eps=norm_eps)
        if cross_attention:
            self.cross_attn = MultiHeadAttention(d_model, n_heads, attn_dropout, bias, cross=True, context_dim=context_dim)
            self.cross_attn_norm = nn.LayerNorm(d_model, eps=norm_eps)
        else:
            self.cross_attn = None
        self.ff = FeedForward(d_model, d_ff, act, dropout, bias)
        self.ff_norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _residual(self, x: Tensor, norm: nn.LayerNorm, sublayer, residual=None) -> tuple[Tensor, Tensor | None]:
        """Post-norm: norm(x + sublayer(x)); pre-norm: x + sublayer(norm(x)). residual: a function selecting the
        residual stream's rows that the sublayer's output covers (core/fast.py's query_positions), None: all of x."""
        skip = x if residual is None else residual(x)
        if self.norm_first:
            out, weights = sublayer(norm(x))
            return skip + self.drop_path(self.dropout(out)), weights
        out, weights = sublayer(x)
        return norm(skip + self.drop_path(self.dropout(out))), weights

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        attn_mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
        is_causal: bool = False,
        context_padding_mask: Tensor | None = None,
        cache: BlockCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor | None]]:
        """x (B, T, D), context (B, S, Dc). Returns x (B, T, D) and the attention weights
        {"self": (B, H, T, T), "cross": (B, H, T, S)} when need_weights (else None values)."""
        weights: dict[str, Tensor | None] = {}
        x, weights["self"] = self._residual(
            x,
            self.self_attn_norm,
            lambda h: self.self_attn(
                h,
                attn_mask=attn_mask,
                padding_mask=padding_mask,
                is_causal=is_causal,
                cache=cache.self_attn if cache is not None else None,
                need_weights=need_weights,
            ),
        )
        if self.cross_attn is not None:
            x, weights["cross"] = self._residual(
                x,
                self.cross_attn_norm,
                lambda h: self.cross_attn(
                    h,
                    context,
                    padding_mask=context_padding_mask,
                    cache=cache.cross_attn if cache is not None else None,
                    need_weights=need_weights,
                ),
            )
        x, _ = self._residual(x, self.ff_norm, lambda h: (self.ff(h), None))
        return x, weights
