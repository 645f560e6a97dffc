"""CLIP (Radford et al. 2021): a Transformer text encoder and a ViT image encoder, each followed by a linear
projection into one embedding space, trained with a symmetric contrastive loss whose temperature is
learned. Composition of the shared core: the text tower is a pre-norm Encoder, the image tower a ViT.

The text tower reads [CLS] caption [SEP] (the WordPiece tokenizer adds both) and pools the [CLS] vector;
the image tower pools its [CLS] vector. A batch may hold several pairs with the same content (two scenes
both captioned "a red bag"): `groups` (B,) gives each pair a content id, and pairs that share one count
as matches (soft targets), so the loss never pushes apart a caption and an image that do match.

Legend: B batch, T caption tokens, D tower width, E embedding width, C H W image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core import Encoder, LearnedPositionalEmbedding
from nanofm.core.output import ModelOutput
from nanofm.families.vit.vit import ViT, ViTConfig


@dataclass
class TextEncoderConfig:
    vocab_size: int = 512  # WordPiece vocabulary (set from the tokenizer by the task)
    max_len: int = 32  # longest caption, [CLS] and [SEP] included
    d_model: int = 128  # width of every token vector
    n_layers: int = 4  # encoder blocks (pre-norm, bidirectional)
    n_heads: int = 4  # attention heads
    d_ff: int = 256  # feed-forward width
    dropout: float = 0.0  # on embeddings, residual branches and inside the feed-forward layers
    pad_id: int = 0  # [PAD]: left out of attention

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}", ("d_model", "n_heads"))


def _clip_image_default() -> ViTConfig:
    return ViTConfig(image_size=32, patch_size=4, in_channels=3, d_model=128, n_layers=4, n_heads=4, d_ff=256, n_classes=0)


@dataclass
class CLIPConfig:
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)  # the text tower
    image: ViTConfig = field(default_factory=_clip_image_default)  # the image tower (n_classes 0: no head)
    embed_dim: int = 128  # E, the shared embedding width
    init_temperature: float = 0.07  # initial softmax temperature (CLIP: 0.07, a logit scale of 1/0.07)
    max_logit_scale: float = 100.0  # the learned logit scale is clamped to this (CLIP)

    def __post_init__(self):
        if self.image.n_classes != 0:
            raise ConfigError("CLIP's image tower has no classification head: set image.n_classes to 0", ("image.n_classes",))
        if not 0 < self.init_temperature <= 1:
            raise ConfigError(f"init_temperature must be in (0, 1], got {self.init_temperature}", ("init_temperature",))


class TextEncoder(nn.Module):
    """Tokens (B, T) -> token features (B, T, D) of a pre-norm Transformer encoder (final LayerNorm)."""

    def __init__(self, cfg: TextEncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.pos_embed = LearnedPositionalEmbedding(cfg.d_model, cfg.max_len)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(cfg.n_layers, cfg.d_model, cfg.n_heads, cfg.d_ff, dropout=cfg.dropout, norm_first=True)
        nn.init.normal_(self.tok_embed.weight, std=0.02)

    def forward(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        if padding_mask is None:
            padding_mask = tokens == self.cfg.pad_id
        x = self.drop(self.pos_embed(self.tok_embed(tokens)))
        return self.encoder(x, padding_mask=padding_mask)  # (B, T, D)


def contrastive_loss(image_emb: Tensor, text_emb: Tensor, logit_scale: Tensor, groups: Tensor | None = None) -> Tensor:
    """Symmetric InfoNCE over normalised embeddings (B, E): the mean of the image->text and text->image
    cross-entropies. With groups (B,), every pair of the same group is a match (uniform soft targets)."""
    logits = logit_scale * image_emb @ text_emb.t()  # (B, B), image i against caption j
    if groups is None:
        targets = torch.arange(logits.size(0), device=logits.device)
        return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2
    same = (groups[:, None] == groups[None, :]).float()
    targets = same / same.sum(1, keepdim=True)  # symmetric: the same matrix both ways
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


class CLIP(nn.Module):
    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg.text)
        self.image = ViT(cfg.image)
        self.text_proj = nn.Linear(cfg.text.d_model, cfg.embed_dim, bias=False)
        self.image_proj = nn.Linear(cfg.image.d_model, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))  # log of 1 / temperature
        for proj in (self.text_proj, self.image_proj):
            nn.init.normal_(proj.weight, std=proj.in_features**-0.5)

    def text_features(self, tokens: Tensor, padding_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """(token features (B, T, D), normalised text embedding (B, E)) from the [CLS] vector."""
        h = self.text(tokens, padding_mask)
        return h, F.normalize(self.text_proj(h[:, 0]), dim=-1)

    def encode_text(self, tokens: Tensor, padding_mask: Tensor | None = None) -> Tensor:
        return self.text_features(tokens, padding_mask)[1]

    def encode_image(self, images: Tensor) -> Tensor:
        """images (B, C, H, W) in [-1, 1] -> normalised embedding (B, E)."""
        pooled = self.image.forward_head(self.image.forward_features(images), pre_logits=True)
        return F.normalize(self.image_proj(pooled), dim=-1)

    def scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=self.cfg.max_logit_scale)

    def forward(self, images: Tensor, tokens: Tensor, padding_mask: Tensor | None = None,
                groups: Tensor | None = None) -> ModelOutput:
        """Pairs (images[i], tokens[i]) -> the contrastive loss; logits (B, B) image against caption."""
        img, txt = self.encode_image(images), self.encode_text(tokens, padding_mask)
        scale = self.scale()
        return ModelOutput(loss=contrastive_loss(img.float(), txt.float(), scale, groups), logits=scale * img @ txt.t())
