"""Inference shortcuts of a bidirectional encoder stack, kept apart from the plain path (attention.py, block.py,
transformer.py) and computed with the same submodules: equal to the plain path at every position they return
(they change no weights, so training may use them too). Used at model level: BERT's sequence classifier and the
ViT's [CLS] head.

    encode(stack, x, padding_mask, query_positions=slice(0, 1), skip_padding=True)   # (B, 1, D)

  query_positions  slice / (Tq,) index: only these positions' outputs are needed (slice(0, 1): the [CLS] vector
                   of a classifier); the LAST layer computes queries, attention output and feed-forward only
                   there (keys and values from every position), and the result is (B, Tq, D);
  skip_padding     with a padding_mask: projections, norms and feed-forwards run on the real tokens only
                   (gathered once, attention itself padded); padding positions of the result are 0 (the plain
                   path leaves values there that nothing should read).

Legend: B batch, T length, N real tokens of the batch, D model width, H heads, Tq selected queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from nanofm.core.attention import MultiHeadAttention
from nanofm.core.block import TransformerBlock
from nanofm.core.transformer import TransformerStack


@dataclass
class TokenLayout:
    """Where the real tokens of a padded (B, T) batch are: x (B, T, F) <-> packed (N, F), N real tokens.
    Padding positions come back from `pad` as zeros."""

    index: Tensor  # (N,) flat indices b * T + t of the real tokens, row-major
    batch: int
    length: int

    @classmethod
    def from_padding_mask(cls, padding_mask: Tensor) -> TokenLayout:
        b, t = padding_mask.shape
        return cls((~padding_mask).reshape(-1).nonzero().squeeze(1), b, t)

    def pack(self, x: Tensor) -> Tensor:  # (B, T, F) -> (N, F)
        return x.reshape(self.batch * self.length, -1).index_select(0, self.index)

    def pad(self, x: Tensor) -> Tensor:  # (N, F) -> (B, T, F), zeros at padding
        out = x.new_zeros(self.batch * self.length, x.size(-1)).index_copy(0, self.index, x)
        return out.view(self.batch, self.length, -1)


def encode(stack: TransformerStack, x: Tensor, padding_mask: Tensor | None = None, attn_mask: Tensor | None = None,
           query_positions: slice | Tensor | None = None, skip_padding: bool = False) -> Tensor:
    """stack(x, padding_mask=..., attn_mask=...) with the shortcuts above: (B, T, D), or (B, Tq, D) at
    query_positions."""
    if stack.causal or any(block.cross_attn is not None for block in stack.layers):
        raise ValueError("query_positions / skip_padding are for bidirectional stacks without cross-attention")
    layout = TokenLayout.from_padding_mask(padding_mask) if skip_padding and padding_mask is not None else None
    if layout is not None:
        x = layout.pack(x)  # (N, D)
    last = len(stack.layers) - 1
    for i, block in enumerate(stack.layers):
        x = _block(block, x, attn_mask, padding_mask, query_positions if i == last else None, layout)
    if stack.final_norm is not None:
        x = stack.final_norm(x)
    if layout is not None and (query_positions is None or not stack.layers):
        x = layout.pad(x)  # (B, T, D)
    if query_positions is not None and not stack.layers:
        x = x[:, query_positions]
    return x


def _block(block: TransformerBlock, x: Tensor, attn_mask: Tensor | None, padding_mask: Tensor | None,
           query_positions: slice | Tensor | None, layout: TokenLayout | None) -> Tensor:
    """A block on packed (N, D) rows (with layout) or (B, T, D); with query_positions, its output is (B, Tq, D)."""
    residual = None
    if query_positions is not None:
        def residual(h: Tensor) -> Tensor:  # the residual stream's rows the attention output covers
            return (layout.pad(h) if layout is not None else h)[:, query_positions]

    attend = lambda h: (_attention(block.self_attn, h, attn_mask, padding_mask, query_positions, layout), None)  # noqa: E731
    x, _ = block._residual(x, block.self_attn_norm, attend, residual)
    x, _ = block._residual(x, block.ff_norm, lambda h: (block.ff(h), None))
    return x


def _attention(attn: MultiHeadAttention, x: Tensor, attn_mask: Tensor | None, padding_mask: Tensor | None,
               query_positions: slice | Tensor | None, layout: TokenLayout | None) -> Tensor:
    """Self-attention on packed rows (with layout: keys and values padded back for the product), or with
    queries at query_positions only (one qkv weight, sliced)."""
    d, w, b = attn.d_model, attn.qkv_proj.weight, attn.qkv_proj.bias
    t = layout.length if layout is not None else x.size(1)
    if query_positions is None:
        qkv = attn.qkv_proj(x)
        qkv = layout.pad(qkv) if layout is not None else qkv  # (B, T, 3D)
        q, k, v = (attn._heads(z) for z in qkv.chunk(3, dim=-1))
    else:
        kv = F.linear(x, w[d:], None if b is None else b[d:])
        kv = layout.pad(kv) if layout is not None else kv  # (B, T, 2D)
        k, v = (attn._heads(z) for z in kv.chunk(2, dim=-1))
        full = layout.pad(x) if layout is not None else x  # (B, T, D)
        q = attn._heads(F.linear(full[:, query_positions], w[:d], None if b is None else b[:d]))  # (B, H, Tq, hd)
    mask = attn_mask
    if mask is not None and query_positions is not None and mask.dim() >= 2 and mask.size(-2) == t:
        mask = mask[..., query_positions, :]  # the selected queries' rows
    out, _ = attn._attend(q, k, v, mask, padding_mask, False, False)  # (B, T or Tq, D)
    if query_positions is None and layout is not None:
        out = layout.pack(out)  # (N, D)
    return attn.out_proj(out)
