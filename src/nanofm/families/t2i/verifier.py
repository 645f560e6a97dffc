"""The scene verifier: a small convolutional classifier that reads, for every position of a scene (centre,
left, right), which Fashion-MNIST item is there (or none) and its colour (or none). It is trained
separately on the ground truth of real scenes and shares no weights with the generator, so that it can
score generated images against their captions.

Legend: B batch, S positions (slots), C H W image, K items + 1 (empty), Q colours + 1 (empty).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core.output import ModelOutput


@dataclass
class VerifierConfig:
    image_size: int = 32  # side of the (square) scene
    in_channels: int = 3  # RGB
    width: int = 32  # channels of the first stage (doubled at each of the three stages)
    hidden: int = 256  # width of the hidden layer of the head
    n_slots: int = 3  # positions of a scene (centre, left, right)
    n_items: int = 10  # item classes (Fashion-MNIST)
    n_colours: int = 6  # tints
    dropout: float = 0.2  # before the last layer

    def __post_init__(self):
        if self.image_size % 8:
            raise ConfigError(f"image_size must be divisible by 8 (three 2x poolings), got {self.image_size}",
                              ("image_size",))


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class SceneVerifier(nn.Module):
    def __init__(self, cfg: VerifierConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.features = nn.Sequential(_stage(cfg.in_channels, w), _stage(w, 2 * w), _stage(2 * w, 4 * w))
        side = cfg.image_size // 8
        n_out = cfg.n_slots * (cfg.n_items + 1 + cfg.n_colours + 1)
        # flattened, not pooled: where an item is matters (left, right, centre)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * w * side * side, cfg.hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(cfg.dropout), nn.Linear(cfg.hidden, n_out))

    def logits(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """images (B, C, H, W) in [-1, 1] -> item logits (B, S, K), colour logits (B, S, Q)."""
        cfg = self.cfg
        out = self.head(self.features(images)).view(images.size(0), cfg.n_slots, -1)
        return out[..., : cfg.n_items + 1], out[..., cfg.n_items + 1 :]

    def forward(self, images: Tensor, items: Tensor | None = None, colours: Tensor | None = None) -> ModelOutput:
        """items, colours (B, S) with -1 where a slot is empty -> the summed cross-entropy of both heads."""
        item_logits, colour_logits = self.logits(images)
        if items is None or colours is None:
            return ModelOutput(logits=item_logits)
        item_t = torch.where(items < 0, self.cfg.n_items, items)
        colour_t = torch.where(colours < 0, self.cfg.n_colours, colours)
        loss = F.cross_entropy(item_logits.flatten(0, 1).float(), item_t.flatten()) + F.cross_entropy(
            colour_logits.flatten(0, 1).float(), colour_t.flatten())
        return ModelOutput(loss=loss, logits=item_logits)

    @torch.no_grad()
    def predict(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """-> items (B, S), colours (B, S), -1 for an empty slot."""
        item_logits, colour_logits = self.logits(images)
        items, colours = item_logits.argmax(-1), colour_logits.argmax(-1)
        return (torch.where(items == self.cfg.n_items, -1, items),
                torch.where(colours == self.cfg.n_colours, -1, colours))
