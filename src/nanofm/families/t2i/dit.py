"""The image decoder: a diffusion model whose denoiser is a DiT (Peebles & Xie 2023), a Transformer over
image patches with the timestep and a condition vector (here the CLIP image embedding, as in DALL-E 2's
decoder) injected by adaptive LayerNorm with zero-initialised gates (adaLN-Zero). The condition also
enters as `cond_tokens` extra tokens of the sequence (DALL-E 2 adds four). Classifier-free guidance: in
training the condition is replaced by a learned null vector for a `cond_drop` share of the samples.

Composition: PatchEmbedding, 2-D sin-cos positions, TimestepEmbedding, AdaLNZeroBlock and
AdaptiveLayerNorm from the shared core; the noise schedule and samplers from models/diffusion.py.

Legend: B batch, C H W image (in [-1, 1]), P patch, N patches, K condition tokens, D width, E condition width.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core.adaptive import AdaLNZeroBlock, AdaptiveLayerNorm
from nanofm.core.layers import PatchEmbedding, unpatchify
from nanofm.core.output import ModelOutput
from nanofm.core.positional import TimestepEmbedding, sincos_2d_table
from nanofm.families.t2i.diffusion import DiffusionConfig, DiffusionModel, guided


@dataclass
class DiTConfig:
    image_size: int = 32  # side of the (square) image
    patch_size: int = 4  # side of a patch: (image_size / patch_size)^2 tokens
    in_channels: int = 3  # RGB
    d_model: int = 256  # width of every token
    n_layers: int = 6  # adaLN-Zero blocks
    n_heads: int = 4  # attention heads
    d_ff: int = 1024  # feed-forward width (DiT: 4 * d_model)
    cond_dim: int = 128  # E, width of the condition vector (the CLIP embedding width)
    cond_tokens: int = 4  # the condition also as this many extra tokens (0: through adaLN only)
    cond_drop: float = 0.1  # share of training samples with the null condition (classifier-free guidance)
    dropout: float = 0.0  # inside the blocks
    ema_decay: float = 0.999  # exponential moving average of the weights, used for sampling; 0: none
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)  # schedule and prediction target

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ConfigError(f"image_size={self.image_size} must be divisible by patch_size={self.patch_size}",
                              ("image_size", "patch_size"))
        if self.d_model % self.n_heads or self.d_model % 4:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads} and by 4",
                              ("d_model", "n_heads"))
        if not 0 <= self.cond_drop < 1 or not 0 <= self.ema_decay < 1:
            raise ConfigError("cond_drop and ema_decay must be in [0, 1)", ("cond_drop", "ema_decay"))


class DiT(nn.Module):
    """The denoiser: (x_t (B, C, H, W), t (B,), cond (B, E)) -> prediction (B, C, H, W)."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        d, grid = cfg.d_model, cfg.image_size // cfg.patch_size
        self.patch_embed = PatchEmbedding(cfg.image_size, cfg.patch_size, cfg.in_channels, d)
        self.register_buffer("pos", sincos_2d_table(d, grid, grid), persistent=False)  # (N, D)
        self.t_embed = TimestepEmbedding(d)
        self.cond_embed = nn.Sequential(nn.Linear(cfg.cond_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.cond_to_tokens = nn.Linear(cfg.cond_dim, cfg.cond_tokens * d) if cfg.cond_tokens else None
        self.null_cond = nn.Parameter(torch.randn(cfg.cond_dim) / cfg.cond_dim**0.5)  # "no condition", learned
        self.blocks = nn.ModuleList(
            AdaLNZeroBlock(d, cfg.n_heads, cfg.d_ff, d, dropout=cfg.dropout) for _ in range(cfg.n_layers)
        )
        self.final_norm = AdaptiveLayerNorm(d, d)
        self.out = nn.Linear(d, cfg.patch_size**2 * cfg.in_channels)
        self._init()

    def _init(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.modulation[1].weight), nn.init.zeros_(block.modulation[1].bias)
        nn.init.zeros_(self.final_norm.proj[1].weight), nn.init.zeros_(self.final_norm.proj[1].bias)
        nn.init.zeros_(self.out.weight), nn.init.zeros_(self.out.bias)  # the first prediction is 0
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.size(0), -1))
        for lin in (self.t_embed.mlp[0], self.t_embed.mlp[2]):
            nn.init.normal_(lin.weight, std=0.02)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        cfg = self.cfg
        cond = cond * cfg.cond_dim**0.5  # unit-norm embeddings -> about unit variance per dimension
        c = self.t_embed(t) + self.cond_embed(cond)  # (B, D)
        h = self.patch_embed(x) + self.pos.to(x.dtype)  # (B, N, D)
        n = h.size(1)
        if self.cond_to_tokens is not None:
            h = torch.cat([h, self.cond_to_tokens(cond).view(x.size(0), cfg.cond_tokens, -1)], dim=1)  # (B, N+K, D)
        for block in self.blocks:
            h = block(h, c)
        h = self.out(self.final_norm(h[:, :n], c))  # (B, N, P*P*C)
        return unpatchify(h, cfg.patch_size, cfg.in_channels, cfg.image_size, cfg.image_size)


class DiffusionDecoder(DiffusionModel):
    """Training: images (B, C, H, W) in [-1, 1] and their condition (B, E) -> the DDPM loss.
    Sampling: conditions (B, E) -> images, by DDIM with classifier-free guidance, from the EMA weights."""

    def __init__(self, cfg: DiTConfig):
        super().__init__(DiT(cfg), cfg.diffusion, cfg.ema_decay)
        self.cfg = cfg

    def drop_condition(self, cond: Tensor) -> Tensor:
        """cond (B, E) with a cfg.cond_drop share of the rows replaced by the null condition."""
        drop = torch.rand(cond.size(0), device=cond.device) < self.cfg.cond_drop
        return torch.where(drop[:, None], self.net.null_cond.to(cond.dtype).expand_as(cond), cond)

    def forward(self, images: Tensor, cond: Tensor) -> ModelOutput:
        if self.training:
            cond = self.drop_condition(cond)
        t = self.schedule.sample_timesteps(images.size(0), images.device)
        noise = torch.randn_like(images)
        pred = self.net(self.schedule.q_sample(images, t, noise), t, cond)
        return ModelOutput(loss=self.schedule.loss(pred, images, noise, t))

    def guided_prediction(self, x: Tensor, t: Tensor, cond: Tensor, scale: float, use_ema: bool = True) -> Tensor:
        """The classifier-free-guided prediction at (x, t); scale 1: the conditional prediction only."""
        net = self.denoiser(use_ema)
        if scale == 1.0:
            return net(x, t, cond)
        null = net.null_cond.to(cond.dtype).expand_as(cond)
        return guided(lambda x2, t2: net(x2, t2, torch.cat([cond, null])), x, t, scale)

    @torch.no_grad()
    def sample(self, cond: Tensor, steps: int = 50, guidance: float = 3.0, eta: float = 0.0,
               generator: torch.Generator | None = None, use_ema: bool = True, progress: bool = False) -> Tensor:
        """cond (B, E) -> images (B, C, H, W) in [-1, 1]."""
        cfg = self.cfg
        shape = (cond.size(0), cfg.in_channels, cfg.image_size, cfg.image_size)
        return self.schedule.sample(lambda x, t: self.guided_prediction(x, t, cond, guidance, use_ema), shape,
                                    steps, eta, generator=generator, device=cond.device, progress=progress,
                                    desc="decoder").clamp(-1, 1)
