"""Vision Transformer (Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021): an image is cut into P x P
patches, each patch projected to a token, a [CLS] token prepended (pool="cls"), positions added, and the
tokens run through a pre-norm Transformer encoder. The class comes from the [CLS] vector or the mean of
the patch vectors. Composition of the shared core only.

forward_features / forward_head split the backbone from the classifier (as timm does); MAE (models/mae.py)
feeds the backbone only the visible patches through `ids_keep`.

Legend: B batch, C channels, H W image size, P patch size, g grid side (H / P), N patches (g * g),
K patches kept, T tokens (N or K, plus 1 with [CLS]), D model width, L layers, nh heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core import Encoder, PatchEmbedding, fast, sincos_2d_table
from nanofm.core.output import ModelOutput


@dataclass
class ViTConfig:
    image_size: int = 28  # side of the (square) input image, in pixels
    patch_size: int = 4  # side of a patch; image_size must be divisible by it
    in_channels: int = 1  # 1 for grey-scale (Fashion-MNIST), 3 for RGB
    d_model: int = 128  # width of every token vector
    n_layers: int = 6  # encoder blocks
    n_heads: int = 4  # attention heads; d_model must be divisible by it
    d_ff: int = 256  # hidden width of the feed-forward layers (MLP ratio 2 here; ViT/DeiT use 4)
    n_classes: int = 10  # classes of the head; 0: no head, forward_head returns the pooled features
    pool: Literal["cls", "mean"] = "cls"  # the [CLS] vector, or the mean of the patch vectors (no [CLS] token)
    pos: Literal["learned", "sincos"] = "learned"  # a trained table, or fixed 2-D sin-cos (MAE; [CLS] gets 0)
    dropout: float = 0.0  # on the embedded tokens, residual branches and inside the feed-forward layers
    attn_dropout: float = 0.0  # on attention weights
    drop_path: float = 0.0  # stochastic depth of the last block (linear from 0 at the first; DeiT: 0.1)
    patch_dropout: float = 0.0  # share of each training image's patches left out of the encoder, a new random
    # choice per image (PatchDropout, Liu et al. 2023); evaluation sees every patch, and MAE pretraining hides
    # patches by its own mask_ratio instead (it calls forward_features, not forward). An MAE
    # encoder, pretrained on a quarter of the patches, fine-tunes on 200 labels best when it sees part: see
    # docs/vision.md
    norm_eps: float = 1e-6  # LayerNorm epsilon (timm's ViT)
    init_std: float = 0.02  # std of the truncated-normal init of weights, positions and [CLS]

    def __post_init__(self):
        if min(self.image_size, self.patch_size, self.in_channels, self.d_model, self.n_layers, self.n_heads, self.d_ff) < 1:
            raise ConfigError("image_size, patch_size, in_channels, d_model, n_layers, n_heads and d_ff must be >= 1",
                              ("image_size", "patch_size", "in_channels", "d_model", "n_layers", "n_heads", "d_ff"))
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}",
                              ("image_size", "patch_size"))
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}",
                              ("d_model", "n_heads"))
        if self.pos == "sincos" and self.d_model % 4:
            raise ConfigError(f"pos='sincos' needs d_model divisible by 4, got {self.d_model}", ("d_model", "pos"))
        if self.n_classes < 0:
            raise ConfigError(f"n_classes must be >= 0 (0: no head), got {self.n_classes}", ("n_classes",))
        if not all(0.0 <= p < 1.0 for p in (self.dropout, self.attn_dropout, self.drop_path, self.patch_dropout)):
            raise ConfigError("dropout, attn_dropout, drop_path and patch_dropout must be in [0, 1)",
                              ("dropout", "attn_dropout", "drop_path", "patch_dropout"))

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size


class PatchPositions(nn.Module):
    """Positions of `n_prefix` leading tokens ([CLS]) and a g x g grid of patches, row-major: a learned
    table (`weight`, a parameter), or fixed 2-D sin-cos for the patches and zero for the prefix (`weight`,
    a buffer left out of the state dict). forward() -> (prefix (n_prefix, D), patches (N, D))."""

    def __init__(self, kind: str, dim: int, grid: int, n_prefix: int):
        super().__init__()
        self.n_prefix = n_prefix
        if kind == "learned":
            self.weight = nn.Parameter(torch.zeros(n_prefix + grid * grid, dim))
        elif kind == "sincos":
            table = F.pad(sincos_2d_table(dim, grid, grid), (0, 0, n_prefix, 0))  # zero rows for the prefix
            self.register_buffer("weight", table, persistent=False)
        else:
            raise ValueError(f"unknown positions {kind!r}; choose 'learned' or 'sincos'")

    def forward(self) -> tuple[Tensor, Tensor]:
        return self.weight[: self.n_prefix], self.weight[self.n_prefix :]


def select_patches(x: Tensor, ids_keep: Tensor) -> Tensor:
    """x (B, N, D), ids_keep (B, K) patch indices -> (B, K, D) the kept patches, in ids_keep's order."""
    return x.gather(1, ids_keep[..., None].expand(-1, -1, x.size(-1)))


class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.patch_embed = PatchEmbedding(cfg.image_size, cfg.patch_size, cfg.in_channels, d)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d)) if cfg.pool == "cls" else None  # timm: only to pool
        self.pos_embed = PatchPositions(cfg.pos, d, cfg.grid, self.n_prefix_tokens)
        self.drop = nn.Dropout(cfg.dropout)
        self.encoder = Encoder(
            cfg.n_layers, d, cfg.n_heads, cfg.d_ff, dropout=cfg.dropout, attn_dropout=cfg.attn_dropout,
            act="gelu", norm_first=True, norm_eps=cfg.norm_eps, drop_path=cfg.drop_path,
        )  # fmt: skip  (pre-norm, ending with the final LayerNorm)
        self.head = nn.Linear(d, cfg.n_classes) if cfg.n_classes > 0 else nn.Identity()
        _init_vit(self, cfg.init_std)

    @property
    def n_prefix_tokens(self) -> int:
        """Tokens before the patches: 1 ([CLS]) with pool="cls", else 0."""
        return int(self.cfg.pool == "cls")

    @property
    def grid(self) -> int:
        """Patches per side, g."""
        return self.cfg.grid

    @property
    def n_patches(self) -> int:
        """Patches per image, N = g * g."""
        return self.cfg.grid**2

    def embed(self, images: Tensor, ids_keep: Tensor | None = None) -> Tensor:
        """images (B, C, H, W) -> the encoder's input tokens (B, [1+]K, D). Positions are added BEFORE
        ids_keep (B, K) selects patches, so every kept patch keeps its own position."""
        cls_pos, patch_pos = self.pos_embed()
        x = self.patch_embed(images) + patch_pos  # (B, N, D)
        if ids_keep is not None:
            x = select_patches(x, ids_keep)  # (B, K, D)
        if self.cls_token is not None:
            x = torch.cat([(self.cls_token + cls_pos).expand(x.size(0), -1, -1), x], dim=1)
        return self.drop(x)

    def forward_features(self, images: Tensor, ids_keep: Tensor | None = None,
                         query_positions: slice | None = None) -> Tensor:
        """images (B, C, H, W) -> normalised token features (B, T, D), [CLS] first when pool="cls";
        query_positions: the last layer's outputs at those positions only (core/fast.py)."""
        x = self.embed(images, ids_keep)  # (B, T, D)
        return self.encoder(x) if query_positions is None else fast.encode(self.encoder, x, query_positions=query_positions)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        """features (B, T, D) -> logits (B, n_classes), or the pooled vector (B, D) with pre_logits
        (or without a head, n_classes=0)."""
        pooled = features[:, 0] if self.cfg.pool == "cls" else features.mean(dim=1)  # (B, D)
        return pooled if pre_logits else self.head(pooled)

    def patches_kept(self, batch: int, device=None) -> Tensor | None:
        """Patch dropout: the indices (B, K) of the patches each image keeps, K = round(N * (1 - patch_dropout))
        at least 1, a random choice per image (the global RNG); None when nothing is dropped."""
        if not self.cfg.patch_dropout:
            return None
        n_keep = max(1, round(self.n_patches * (1 - self.cfg.patch_dropout)))
        return torch.rand(batch, self.n_patches, device=device).argsort(dim=1)[:, :n_keep]

    def forward(self, images: Tensor, targets: Tensor | None = None) -> ModelOutput:
        """images (B, C, H, W), targets (B,) class ids -> logits (B, n_classes) and the mean cross-entropy.
        With [CLS] pooling only [CLS] is read, so the last layer computes its query, attention output and
        feed-forward there alone (keys and values from every token): the same logits and gradients, less work."""
        only_cls = slice(0, 1) if self.cfg.pool == "cls" else None
        ids_keep = self.patches_kept(images.size(0), images.device) if self.training else None  # (B, K) or None
        logits = self.forward_head(self.forward_features(images, ids_keep, only_cls))  # features (B, 1 or T, D)
        if targets is None:
            return ModelOutput(logits=logits)
        return ModelOutput(loss=F.cross_entropy(logits.float(), targets), logits=logits)

    @torch.no_grad()
    def attention_maps(self, images: Tensor) -> list[Tensor]:
        """Self-attention weights of every layer, by the core's explicit attention path: L x (B, nh, T, T),
        rows summing to 1 (for attention rollout; call .eval() first to switch dropout off)."""
        _, weights = self.encoder(self.embed(images), need_weights=True)
        return [w["self"] for w in weights]


@torch.no_grad()
def _init_vit(model: ViT, std: float) -> None:
    """timm / MAE init: truncated-normal(std) Linear weights, positions and [CLS]; zero biases; LayerNorms
    at 1 and 0; the patch projection like a Linear over the flattened patch (xavier-uniform, as MAE)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight), nn.init.zeros_(m.bias)
    proj = model.patch_embed.proj
    nn.init.xavier_uniform_(proj.weight.view(proj.weight.size(0), -1))  # (D, C*P*P)
    nn.init.zeros_(proj.bias)
    if isinstance(model.pos_embed.weight, nn.Parameter):
        nn.init.trunc_normal_(model.pos_embed.weight, std=std, a=-2 * std, b=2 * std)
    if model.cls_token is not None:
        nn.init.trunc_normal_(model.cls_token, std=std, a=-2 * std, b=2 * std)
