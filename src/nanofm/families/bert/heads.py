"""Heads that turn encoder features into predictions: the masked-language-model head (tied to the token
embeddings), the [CLS] pooler, and a classification head for sequences, sentence pairs or tokens.

Legend: B batch, T length, N selected positions, D model width, V vocabulary, C classes.
"""

from __future__ import annotations

from torch import Tensor, nn

from nanofm.core.layers import activation


class MLMHead(nn.Module):
    """BERT's prediction head: Linear(D->D) -> activation -> LayerNorm -> Linear(D->V) with its own bias.

    With `tied_weight` (the token embedding table, (V, D)) the output projection shares it.
    Works on any leading shape: (B, T, D) -> (B, T, V), or (N, D) -> (N, V) for selected positions only.
    """

    def __init__(
        self, d_model: int, vocab_size: int, act: str = "gelu", norm_eps: float = 1e-12, tied_weight: nn.Parameter | None = None
    ):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)
        self.act = activation(act)
        self.norm = nn.LayerNorm(d_model, eps=norm_eps)
        self.decoder = nn.Linear(d_model, vocab_size)
        if tied_weight is not None:
            if tied_weight.shape != self.decoder.weight.shape:
                raise ValueError(f"tied weight {tuple(tied_weight.shape)} != ({vocab_size}, {d_model})")
            self.decoder.weight = tied_weight

    def forward(self, h: Tensor) -> Tensor:
        return self.decoder(self.norm(self.act(self.dense(h))))


class Pooler(nn.Module):
    """The first token's vector ([CLS]) through Linear(D->D) and tanh: (B, T, D) -> (B, D)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, h: Tensor) -> Tensor:
        return self.dense(h[:, 0]).tanh()


class ClassificationHead(nn.Module):
    """Dropout -> Linear(D->C) on any leading shape. On the pooled [CLS] vector (B, D) -> (B, C) it is the
    sequence (and, with segment ids, sentence-pair) classifier; on every token (B, T, D) -> (B, T, C) it is
    the token classifier (POS, NER)."""

    def __init__(self, d_model: int, n_classes: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(d_model, n_classes)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(self.dropout(h))
