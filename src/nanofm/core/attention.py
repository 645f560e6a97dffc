"""Scaled dot-product attention and multi-head attention with masks and a key/value cache.

Legend: B batch, H heads, T / Tq query length, Tk key length, D model width, hd head width (D / H).
(Inference shortcuts, [CLS]-only queries and skipped padding, are core/fast.py's.)
Mask convention everywhere in nanofm.core:
  attn_mask     bool, broadcastable to (B, H, Tq, Tk), True where a query MAY attend a key (as in SDPA);
                or float, added to the scores (a position bias such as ALiBi's; -inf where a query may not attend);
  padding_mask  bool (B, Tk), True at PADDING keys (as in torch.nn.MultiheadAttention's key_padding_mask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_mask(t_q: int, t_k: int, device: torch.device | None = None) -> Tensor:
    """(Tq, Tk) bool, True where query i may attend key j; the queries are the LAST Tq of Tk positions."""
    return torch.ones(t_q, t_k, dtype=torch.bool, device=device).tril(diagonal=t_k - t_q)


def document_mask(doc_ids: Tensor) -> Tensor:
    """Block-diagonal mask for packed rows: doc_ids (B, T), the document of each position -> attn_mask
    (B, 1, T, T) bool, True where query and key belong to the same document, so that documents packed into
    one row do not see each other and each gets the outputs it would get alone (with positions restarting
    per document, see document_positions). Padding may carry an id of its own (-1): it then sees only padding."""
    return doc_ids[:, None, :, None] == doc_ids[:, None, None, :]


def document_positions(doc_ids: Tensor) -> Tensor:
    """doc_ids (B, T), non-decreasing along each row -> (B, T) the position of each token inside its document."""
    t = torch.arange(doc_ids.size(1), device=doc_ids.device).expand_as(doc_ids)
    new_doc = torch.ones_like(doc_ids, dtype=torch.bool)
    new_doc[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    start = torch.where(new_doc, t, torch.zeros_like(t)).cummax(dim=1).values  # (B, T) where each document starts
    return t - start


def restrict(mask: Tensor | None, allowed: Tensor) -> Tensor:
    """A mask (bool or additive float, or None) narrowed to the `allowed` (bool) query-key pairs."""
    if mask is None:
        return allowed
    return mask & allowed if mask.dtype == torch.bool else mask.masked_fill(~allowed, float("-inf"))


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    need_weights: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """softmax(q k^T / sqrt(hd)) v for q (B, H, Tq, hd), k and v (B, H, Tk, hd).

    Two paths with the same result: PyTorch's fused SDPA kernel (fast, no weights), and an explicit
    path that also returns the attention weights (B, H, Tq, Tk) for attention maps (need_weights=True).
    A query whose keys are all masked gets zero output and zero weights on both paths.
    """
    if is_causal:
        causal = causal_mask(q.size(-2), k.size(-2), q.device)
        attn_mask = restrict(attn_mask, causal)
    additive = attn_mask is not None and attn_mask.dtype != torch.bool
    if additive:
        attn_mask = attn_mask.to(q.dtype)  # SDPA wants the queries' dtype (bf16 under autocast)
    if not need_weights:
        if attn_mask is None:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p), None
        allowed = attn_mask > float("-inf") if additive else attn_mask
        empty = ~allowed.any(-1, keepdim=True)  # queries with no key to attend
        # let empty rows attend everything (no NaN), then zero their output
        mask = attn_mask.masked_fill(empty, 0.0) if additive else attn_mask | empty
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        return out.masked_fill(empty, 0.0), None
    scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (B, H, Tq, Tk)
    if attn_mask is not None:
        scores = scores + attn_mask if additive else scores.masked_fill(~attn_mask, float("-inf"))
    weights = torch.softmax(scores.float(), dim=-1).nan_to_num(0.0).to(q.dtype)  # all-masked rows -> 0
    dropped = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    return dropped @ v, weights


@dataclass
class KVCache:
    """Keys and values seen so far by one attention layer, (B, H, T, hd) each.

    Self-attention appends the new step's keys and values; cross-attention (static=True) projects the
    encoder memory once and reuses it. `reorder` selects batch rows (beam search)."""

    k: Tensor | None = None
    v: Tensor | None = None
    static: bool = False

    @property
    def length(self) -> int:
        return 0 if self.k is None else self.k.size(-2)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.k is None:
            self.k, self.v = k, v
        else:
            self.k, self.v = torch.cat([self.k, k], dim=-2), torch.cat([self.v, v], dim=-2)
        return self.k, self.v

    def reorder(self, index: Tensor) -> None:
        if self.k is not None:
            self.k, self.v = self.k.index_select(0, index), self.v.index_select(0, index)


class MultiHeadAttention(nn.Module):
    """Multi-head attention, self (one fused qkv projection) or cross (q from x, k/v from context)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        cross: bool = False,
        context_dim: int | None = None,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.dropout, self.cross = d_model, n_heads, dropout, cross
        if cross:
            self.q_proj = nn.Linear(d_model, d_model, bias=bias)
            self.kv_proj = nn.Linear(context_dim or d_model, 2 * d_model, bias=bias)
        else:
            self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def _heads(self, x: Tensor) -> Tensor:  # (B, T, D) -> (B, H, T, hd)
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, -1).transpose(1, 2)

    def forward(
        self,
        x: Tensor,
        context: Tensor | None = None,
        attn_mask: Tensor | None = None,
        padding_mask: Tensor | None = None,
        is_causal: bool = False,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, Tq, D); context (B, Tk, Dc) for cross-attention. padding_mask (B, Tk) covers ALL keys,
        cached ones included. Returns the output (B, Tq, D) and, if need_weights, weights (B, H, Tq, Tk)."""
        if self.cross:
            if context is None and (cache is None or cache.k is None):
                raise ValueError("cross-attention needs a context (or a filled cache)")
            q = self._heads(self.q_proj(x))
            if cache is not None and cache.k is not None:  # memory projected at an earlier step
                k, v = cache.k, cache.v
            else:
                k, v = (self._heads(t) for t in self.kv_proj(context).chunk(2, dim=-1))
                if cache is not None:
                    cache.static = True
                    k, v = cache.append(k, v)
        else:
            q, k, v = (self._heads(t) for t in self.qkv_proj(x).chunk(3, dim=-1))
            if cache is not None:
                k, v = cache.append(k, v)

        out, weights = self._attend(q, k, v, attn_mask, padding_mask, is_causal, need_weights)
        return self.out_proj(out), weights

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, padding_mask: Tensor | None,
                is_causal: bool, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        """q (B, H, Tq, Dh), k and v (B, H, Tk, Dh) -> the heads' outputs merged (B, Tq, D), and the weights."""
        if padding_mask is not None:
            mask = restrict(mask, ~padding_mask[:, None, None, :])  # keys (B, 1, 1, Tk)
        causal_fast = is_causal and mask is None and q.size(-2) == k.size(-2) and not need_weights
        if is_causal and not causal_fast and q.size(-2) > 1:
            mask = restrict(mask, causal_mask(q.size(-2), k.size(-2), q.device))
        p = self.dropout if self.training else 0.0
        if causal_fast:
            out, weights = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p), None
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p=p, need_weights=need_weights)
        return out.transpose(1, 2).reshape(q.size(0), q.size(2), self.d_model), weights
