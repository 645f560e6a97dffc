"""Collators: turn lists of variable-length examples into padded batches."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def pad_sequences(seqs: list[Tensor], pad_value: int) -> Tensor:
    """1-D LongTensors of different lengths -> (B, max_len), right-padded with pad_value."""
    out = torch.full((len(seqs), max(len(s) for s in seqs)), pad_value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


class PadCollate:
    """Examples {name: tensor} -> batch {name: (B, ...)}: 1-D tensors right-padded with pad_values[name]
    (default `default`), everything else stacked."""

    def __init__(self, pad_values: dict[str, int] | None = None, default: int = 0):
        self.pad_values, self.default = dict(pad_values or {}), default

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = {}
        for key in examples[0]:
            values = [ex[key] for ex in examples]
            if isinstance(values[0], Tensor) and values[0].ndim == 1:
                batch[key] = pad_sequences(values, self.pad_values.get(key, self.default))
            elif isinstance(values[0], Tensor):
                batch[key] = torch.stack(values)
            else:
                batch[key] = torch.tensor(values)
        return batch


pad_collate = PadCollate()
