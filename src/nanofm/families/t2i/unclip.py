"""unCLIP, the text-to-image pipeline of DALL-E 2 (Ramesh et al. 2022), composed of three trained parts:

    caption --CLIP text tower--> text embedding (+ token features)
            --diffusion prior--> CLIP image embedding
            --diffusion decoder (DiT)--> image

With use_prior=False the decoder is conditioned on the text embedding itself (the paper's ablation:
it works, but worse, since text and image embeddings of one pair are not the same vector).

Legend: B images, T caption tokens, E embedding width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nanofm.config import ConfigError
from nanofm.families.t2i.clip import CLIP
from nanofm.families.t2i.dit import DiffusionDecoder
from nanofm.families.t2i.prior import DiffusionPrior


class UnCLIP(nn.Module):
    def __init__(self, clip: CLIP, prior: DiffusionPrior, decoder: DiffusionDecoder):
        super().__init__()
        if prior.cfg.embed_dim != clip.cfg.embed_dim or decoder.cfg.cond_dim != clip.cfg.embed_dim:
            raise ConfigError(f"embedding widths differ: CLIP {clip.cfg.embed_dim}, prior {prior.cfg.embed_dim}, "
                             f"decoder {decoder.cfg.cond_dim}")
        self.clip, self.prior, self.decoder = clip, prior, decoder

    @torch.no_grad()
    def image_embedding(self, tokens: Tensor, padding_mask: Tensor, use_prior: bool = True, prior_steps: int = 64,
                        prior_guidance: float = 1.0, generator: torch.Generator | None = None,
                        progress: bool = False) -> Tensor:
        """Captions (B, T) -> the embeddings (B, E) the decoder is conditioned on."""
        feats, text_emb = self.clip.text_features(tokens, padding_mask)
        if not use_prior:
            return text_emb
        return self.prior.sample(text_emb, feats, padding_mask, steps=prior_steps, guidance=prior_guidance,
                                 generator=generator, progress=progress)

    @torch.no_grad()
    def generate(self, tokens: Tensor, padding_mask: Tensor, steps: int = 50, guidance: float = 3.0, eta: float = 0.0,
                 use_prior: bool = True, prior_steps: int = 64, prior_guidance: float = 1.0,
                 generator: torch.Generator | None = None, progress: bool = False) -> Tensor:
        """Captions (B, T) -> images (B, C, H, W) in [-1, 1], one per caption row."""
        self.eval()
        emb = self.image_embedding(tokens, padding_mask, use_prior, prior_steps, prior_guidance, generator, progress)
        return self.decoder.sample(emb, steps=steps, guidance=guidance, eta=eta, generator=generator, progress=progress)
