"""Collators: turn lists of variable-length examples into padded batches."""

from __future__ import annotations

import torch
from torch import Tensor


def pad_sequences(seqs: list[Tensor], pad_value: int) -> Tensor:
    """1-D LongTensors of different lengths -> (B, max_len), right-padded with pad_value."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out
