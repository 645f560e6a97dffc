"""Masked autoencoder (He et al. 2022): hide a random 75% of an image's patches, encode only the visible
ones with a ViT, and let a light Transformer decoder predict the hidden patches' pixels from the encoded
patches plus a shared [MASK] token at each hidden position. The loss is the mean squared error on the
hidden patches only, against pixels normalised per patch (norm_pix_loss).

MAE takes a ViT instance and keeps it as `self.encoder`, so a pretrained MAE's weights under "encoder."
are a ViT's: `load_pretrained_encoder(ViT(cfg.encoder with n_classes=10), mae_state_dict)` fine-tunes it.

Legend: B batch, C channels, H W image size, P patch size, N patches, K visible patches (N - masked),
D encoder width, Dd decoder width, Q = P * P * C pixel values per patch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.core import Encoder
from nanofm.core.layers import patchify, unpatchify
from nanofm.core.output import ModelOutput
from nanofm.errors import DataError
from nanofm.families.vit.vit import PatchPositions, ViT, ViTConfig


def random_masking(
    batch: int, n_patches: int, mask_ratio: float, generator: torch.Generator | None = None, device=None
) -> tuple[Tensor, Tensor, Tensor]:
    """MAE's masking by sorting noise: each row keeps K = round(N * (1 - mask_ratio)) random patches.
    Returns ids_keep (B, K) the kept patch indices; ids_restore (B, N) the position of each patch in the
    shuffled order [kept..., masked...] (gathering that order with it restores the original); and
    mask (B, N) float, 1 at masked patches. The noise is drawn on the generator's device."""
    n_keep = round(n_patches * (1 - mask_ratio))
    noise_device = generator.device if generator is not None else device
    noise = torch.rand(batch, n_patches, generator=generator, device=noise_device)
    ids_shuffle = noise.to(device or noise_device).argsort(dim=1)  # (B, N) ascending noise: the first K are kept
    ids_restore = ids_shuffle.argsort(dim=1)  # (B, N)
    mask = torch.ones(batch, n_patches, device=ids_shuffle.device)
    mask[:, :n_keep] = 0
    return ids_shuffle[:, :n_keep], ids_restore, mask.gather(1, ids_restore)


@dataclass
class MAEConfig:
    mask_ratio: float = 0.75  # share of patches hidden from the encoder
    decoder_dim: int = 128  # width of the decoder (MAE: 512 for ViT-B/L)
    decoder_layers: int = 2  # decoder blocks (MAE: 8; 1 still works for fine-tuning)
    decoder_heads: int = 4  # decoder attention heads
    decoder_d_ff: int = 512  # hidden width of the decoder's feed-forward layers
    norm_pix_loss: bool = True  # regress each patch's pixels normalised by its own mean and variance
    pos: Literal["learned", "sincos"] = "sincos"  # decoder positions: fixed 2-D sin-cos (MAE) or learned
    norm_eps: float = 1e-6  # LayerNorm epsilon of the decoder

    def __post_init__(self):
        if not 0.0 < self.mask_ratio < 1.0:
            raise ConfigError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}", ("mask_ratio",))
        if min(self.decoder_dim, self.decoder_layers, self.decoder_heads, self.decoder_d_ff) < 1:
            raise ConfigError("decoder_dim, decoder_layers, decoder_heads and decoder_d_ff must be >= 1",
                              ("decoder_dim", "decoder_layers", "decoder_heads", "decoder_d_ff"))
        if self.decoder_dim % self.decoder_heads:
            raise ConfigError(f"decoder_dim={self.decoder_dim} must be divisible by decoder_heads={self.decoder_heads}",
                              ("decoder_dim", "decoder_heads"))
        if self.pos == "sincos" and self.decoder_dim % 4:
            raise ConfigError(f"pos='sincos' needs decoder_dim divisible by 4, got {self.decoder_dim}",
                              ("decoder_dim", "pos"))


class MAE(nn.Module):
    def __init__(self, encoder: ViT, cfg: MAEConfig):
        super().__init__()
        self.encoder, self.cfg = encoder, cfg  # the ViT itself, not a copy: its weights are "encoder.*"
        n = encoder.n_patches
        if not 1 <= round(n * (1 - cfg.mask_ratio)) < n:
            raise ConfigError(f"mask_ratio={cfg.mask_ratio} leaves no visible or no masked patch out of {n}")
        ecfg, dd = encoder.cfg, cfg.decoder_dim
        self.decoder_embed = nn.Linear(ecfg.d_model, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos = PatchPositions(cfg.pos, dd, encoder.grid, encoder.n_prefix_tokens)
        self.decoder = Encoder(
            cfg.decoder_layers, dd, cfg.decoder_heads, cfg.decoder_d_ff, dropout=0.0, norm_first=True, norm_eps=cfg.norm_eps
        )  # pre-norm, ending with the final LayerNorm
        self.decoder_pred = nn.Linear(dd, ecfg.patch_size**2 * ecfg.in_channels)
        _init_decoder(self)

    def forward_encoder(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """images (B, C, H, W) -> latent (B, [1+]K, D) of the visible patches, mask (B, N), ids_restore (B, N)."""
        ids_keep, ids_restore, mask = random_masking(
            images.size(0), self.encoder.n_patches, self.cfg.mask_ratio, generator, images.device
        )
        return self.encoder.forward_features(images, ids_keep), mask, ids_restore

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """latent (B, [1+]K, D) -> predicted pixels (B, N, Q) of every patch, in the original order."""
        x = self.decoder_embed(latent)  # (B, [1+]K, Dd)
        n_prefix = self.encoder.n_prefix_tokens
        prefix, visible = x[:, :n_prefix], x[:, n_prefix:]
        b, n = ids_restore.shape
        masked = self.mask_token.expand(b, n - visible.size(1), -1)  # (B, N-K, Dd)
        patches = torch.cat([visible, masked], dim=1)  # shuffled order: kept, then masked
        patches = patches.gather(1, ids_restore[..., None].expand(-1, -1, patches.size(-1)))  # (B, N, Dd)
        prefix_pos, patch_pos = self.decoder_pos()
        x = self.decoder(torch.cat([prefix + prefix_pos, patches + patch_pos], dim=1))
        return self.decoder_pred(x[:, n_prefix:])  # (B, N, Q)

    def pixel_targets(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The regression targets (B, N, Q), and each patch's pixel mean and std (B, N, 1) (0 and 1 without
        norm_pix_loss), so that target * std + mean = the patch's pixels."""
        patches = patchify(images, self.encoder.cfg.patch_size)
        if not self.cfg.norm_pix_loss:
            return patches, patches.new_zeros(*patches.shape[:2], 1), patches.new_ones(*patches.shape[:2], 1)
        mean, var = patches.mean(dim=-1, keepdim=True), patches.var(dim=-1, keepdim=True)  # unbiased, as MAE
        std = (var + 1e-6).sqrt()
        return (patches - mean) / std, mean, std

    def forward(self, images: Tensor, targets: Tensor | None = None, generator: torch.Generator | None = None) -> ModelOutput:
        """images (B, C, H, W) -> the loss on the masked patches and logits = predicted pixels (B, N, Q)
        (normalised per patch when norm_pix_loss). `targets` (class labels of a labelled set) is ignored:
        the images are their own targets. n_targets = the number of masked patches the loss averages over."""
        latent, mask, ids_restore = self.forward_encoder(images, generator)
        pred = self.forward_decoder(latent, ids_restore)  # (B, N, Q)
        target = self.pixel_targets(images)[0]
        per_patch = (pred.float() - target.float()).pow(2).mean(dim=-1)  # (B, N)
        n_masked = mask.sum()
        return ModelOutput(loss=(per_patch * mask).sum() / n_masked, logits=pred, n_targets=n_masked)

    @torch.no_grad()
    def reconstruct(self, images: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """For the picture grid: (masked images, reconstructions), both (B, C, H, W). Masked images have
        their hidden patches set to 0; reconstructions keep the visible patches and fill the hidden ones with
        the prediction, de-normalised (norm_pix_loss) with the input patch's own mean and std, as MAE's demo."""
        latent, mask, ids_restore = self.forward_encoder(images, generator)
        pred = self.forward_decoder(latent, ids_restore)
        _, mean, std = self.pixel_targets(images)
        p, c, (h, w) = self.encoder.cfg.patch_size, images.size(1), images.shape[-2:]
        patches, m = patchify(images, p), mask[..., None]  # (B, N, Q), (B, N, 1)
        masked = unpatchify(patches * (1 - m), p, c, h, w)
        filled = unpatchify(patches * (1 - m) + (pred * std + mean) * m, p, c, h, w)
        return masked, filled


def load_pretrained_encoder(model: ViT, state_dict: Mapping[str, Tensor]) -> list[str]:
    """Copy a pretrained MAE's encoder (keys "encoder.*" of an MAE state dict, or a ViT's own keys) into
    `model`, a ViT built from the same ViTConfig but for n_classes / dropouts. The head is left as
    initialised (MAE trains none). Returns the names left as initialised; any other mismatch (a missing
    weight, a stray key, a wrong shape, learned vs sin-cos positions) is an error."""
    prefix = "encoder."
    sd = {k[len(prefix) :]: v for k, v in state_dict.items() if k.startswith(prefix)} or dict(state_dict)
    sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    result = model.load_state_dict(sd, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("head.")]
    if missing or result.unexpected_keys:
        raise DataError(f"pretrained weights do not match the ViT: missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}")
    return result.missing_keys


@dataclass
class MAEPretrainingConfig:
    """What `create("mae-...")` builds: MAE(ViT(encoder), mae). Override with dotted keys:
    create("mae-debug", **{"encoder.d_model": 64, "mae.mask_ratio": 0.5})."""

    encoder: ViTConfig = field(default_factory=lambda: ViTConfig(n_classes=0, pos="sincos"))  # the ViT to pretrain
    mae: MAEConfig = field(default_factory=MAEConfig)  # masking, decoder and loss


def build_mae(cfg: MAEPretrainingConfig) -> MAE:
    return MAE(ViT(cfg.encoder), cfg.mae)


@torch.no_grad()
def _init_decoder(model: MAE) -> None:
    """MAE's init of the new layers: xavier-uniform Linear weights, zero biases, [MASK] ~ N(0, 0.02)."""
    for m in (model.decoder_embed, model.decoder, model.decoder_pred):
        for sub in m.modules():
            if isinstance(sub, nn.Linear):
                nn.init.xavier_uniform_(sub.weight)
                nn.init.zeros_(sub.bias)
    nn.init.normal_(model.mask_token, std=0.02)
    if isinstance(model.decoder_pos.weight, nn.Parameter):
        nn.init.trunc_normal_(model.decoder_pos.weight, std=0.02, a=-0.04, b=0.04)
