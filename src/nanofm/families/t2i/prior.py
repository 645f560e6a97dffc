"""The diffusion prior of DALL-E 2 (Ramesh et al. 2022): a Transformer that turns a caption's CLIP text
embedding into a CLIP image embedding by denoising it. Its input sequence is, in order,

    the caption's token features (T, from CLIP's text tower), the CLIP text embedding, the timestep
    embedding, the noised image embedding z_t, and a learned query token,

and the query token's output is the clean image embedding (the prior predicts x0, as DALL-E 2's does).
Embeddings are unit vectors; the diffusion runs on them scaled by sqrt(E), about unit variance per
dimension. Classifier-free guidance: for a `cond_drop` share of training samples the caption tokens are
masked out and the text embedding replaced by a learned null vector.

Composition: the shared pre-norm Encoder and TimestepEmbedding; diffusion from models/diffusion.py.

Legend: B batch, T caption tokens, Dt text-feature width, E embedding width, D prior width, S = T + 4.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core import Encoder
from nanofm.core.output import ModelOutput
from nanofm.core.positional import TimestepEmbedding
from nanofm.families.t2i.diffusion import DiffusionConfig, DiffusionModel, guided


def _prior_diffusion() -> DiffusionConfig:
    return DiffusionConfig(prediction="x0", clip_x0=None)


@dataclass
class PriorConfig:
    embed_dim: int = 128  # E, the CLIP embedding width
    text_dim: int = 128  # Dt, the width of CLIP's text token features
    max_text_len: int = 32  # T at most (the CLIP text tower's max_len)
    d_model: int = 256  # width of the prior's tokens
    n_layers: int = 6  # encoder blocks (pre-norm)
    n_heads: int = 4  # attention heads
    d_ff: int = 1024  # feed-forward width
    dropout: float = 0.0  # inside the blocks
    cond_drop: float = 0.1  # share of training samples without their caption (classifier-free guidance)
    ema_decay: float = 0.999  # exponential moving average of the weights, used for sampling; 0: none
    diffusion: DiffusionConfig = field(default_factory=_prior_diffusion)  # x0 prediction, no clamping

    def __post_init__(self):
        if self.d_model % self.n_heads:
            raise ConfigError(f"d_model={self.d_model} must be divisible by n_heads={self.n_heads}",
                              ("d_model", "n_heads"))
        if not 0 <= self.cond_drop < 1 or not 0 <= self.ema_decay < 1:
            raise ConfigError("cond_drop and ema_decay must be in [0, 1)", ("cond_drop", "ema_decay"))


class PriorNet(nn.Module):
    """(z_t (B, E), t (B,), text_emb (B, E), text_tokens (B, T, Dt), text_pad (B, T) True at padding,
    drop (B,) True: no caption) -> predicted clean embedding, scaled (B, E)."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.token_proj = nn.Linear(cfg.text_dim, d)
        self.text_emb_proj = nn.Linear(cfg.embed_dim, d)
        self.z_proj = nn.Linear(cfg.embed_dim, d)
        self.t_embed = TimestepEmbedding(d)
        self.query = nn.Parameter(torch.randn(d) * 0.02)
        self.null_text = nn.Parameter(torch.randn(cfg.embed_dim) / cfg.embed_dim**0.5)
        self.pos = nn.Parameter(torch.randn(cfg.max_text_len + 4, d) * 0.02)
        self.encoder = Encoder(cfg.n_layers, d, cfg.n_heads, cfg.d_ff, dropout=cfg.dropout, norm_first=True)
        self.out = nn.Linear(d, cfg.embed_dim)

    def forward(self, z: Tensor, t: Tensor, text_emb: Tensor, text_tokens: Tensor, text_pad: Tensor,
                drop: Tensor | None = None) -> Tensor:
        b, n_tok = text_tokens.shape[:2]
        scale = self.cfg.embed_dim**0.5
        if drop is not None:
            text_emb = torch.where(drop[:, None], self.null_text.to(text_emb.dtype).expand_as(text_emb), text_emb)
            text_pad = text_pad | drop[:, None]
        seq = torch.cat([
            self.token_proj(text_tokens),  # (B, T, D)
            self.text_emb_proj(text_emb * scale)[:, None],
            self.t_embed(t)[:, None],
            self.z_proj(z)[:, None],
            self.query.expand(b, 1, -1),
        ], dim=1) + self.pos[: n_tok + 4]  # (B, S, D)
        pad = F.pad(text_pad, (0, 4), value=False)  # (B, S): the four last tokens are always there
        return self.out(self.encoder(seq, padding_mask=pad)[:, -1])


class DiffusionPrior(DiffusionModel):
    """Training: CLIP image embeddings (B, E), text embeddings (B, E) and caption token features -> the loss.
    Sampling: captions -> image embeddings (unit vectors), with classifier-free guidance."""

    def __init__(self, cfg: PriorConfig):
        super().__init__(PriorNet(cfg), cfg.diffusion, cfg.ema_decay)
        self.cfg = cfg

    def forward(self, image_emb: Tensor, text_emb: Tensor, text_tokens: Tensor, text_pad: Tensor) -> ModelOutput:
        x0 = image_emb * self.cfg.embed_dim**0.5
        drop = torch.rand(x0.size(0), device=x0.device) < self.cfg.cond_drop if self.training else None
        t = self.schedule.sample_timesteps(x0.size(0), x0.device)
        noise = torch.randn_like(x0)
        pred = self.net(self.schedule.q_sample(x0, t, noise), t, text_emb, text_tokens, text_pad, drop)
        return ModelOutput(loss=self.schedule.loss(pred, x0, noise, t))

    def guided_prediction(self, z: Tensor, t: Tensor, text_emb: Tensor, text_tokens: Tensor, text_pad: Tensor,
                          scale: float, use_ema: bool = True) -> Tensor:
        net = self.denoiser(use_ema)
        if scale == 1.0:
            return net(z, t, text_emb, text_tokens, text_pad)
        drop = torch.arange(2 * z.size(0), device=z.device) >= z.size(0)  # the second half: no caption
        two = lambda v: torch.cat([v, v])  # noqa: E731
        return guided(lambda z2, t2: net(z2, t2, two(text_emb), two(text_tokens), two(text_pad), drop), z, t, scale)

    @torch.no_grad()
    def sample(self, text_emb: Tensor, text_tokens: Tensor, text_pad: Tensor, steps: int = 64, guidance: float = 1.0,
               eta: float = 0.0, generator: torch.Generator | None = None, use_ema: bool = True,
               progress: bool = False) -> Tensor:
        """-> image embeddings (B, E), unit vectors."""
        z = self.schedule.sample(
            lambda x, t: self.guided_prediction(x, t, text_emb, text_tokens, text_pad, guidance, use_ema),
            (text_emb.size(0), self.cfg.embed_dim), steps, eta, generator=generator, device=text_emb.device,
            progress=progress, desc="prior",
        )
        return F.normalize(z, dim=-1)
