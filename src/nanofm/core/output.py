"""What every nanofm model returns: the loop reads `loss`, and knows nothing else about the model."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

IGNORE_INDEX = -100  # target value that no loss is computed for (padding, unmasked tokens)


@dataclass
class ModelOutput:
    loss: Tensor | None = None  # scalar, when targets were given
    logits: Tensor | None = None  # (B, T, V) or (B, n_classes)
    n_targets: Tensor | None = None  # how many targets `loss` averages over (the trainer weights micro-batches by it)
