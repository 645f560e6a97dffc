"""Text to image (DALL-E 2 on captioned scenes): CLIP, the diffusion prior and decoder (DiT), unCLIP, the scene
verifier, their tasks and the TextToImage pipeline. Importing it registers them."""

from nanofm.families.t2i import task
from nanofm.families.t2i.clip import CLIP, CLIPConfig, TextEncoderConfig
from nanofm.families.t2i.diffusion import DiffusionConfig, NoiseSchedule
from nanofm.families.t2i.dit import DiffusionDecoder, DiTConfig
from nanofm.families.t2i.prior import DiffusionPrior, PriorConfig
from nanofm.families.t2i.unclip import UnCLIP
from nanofm.families.t2i.verifier import SceneVerifier, VerifierConfig
from nanofm.families.vit.vit import ViTConfig
from nanofm.registry import register_family, register_preset, register_task

# text to image (DALL-E 2 on captioned Fashion-MNIST scenes); the "-scenes" presets are configs/*-scenes.yaml's models
register_family("clip", CLIPConfig, CLIP)
register_family("dit", DiTConfig, DiffusionDecoder)
register_family("prior", PriorConfig, DiffusionPrior)
register_family("verifier", VerifierConfig, SceneVerifier)
_TINY_DIFFUSION = DiffusionConfig(timesteps=50)
register_preset(
    "clip-debug", "clip",
    CLIPConfig(text=TextEncoderConfig(vocab_size=64, max_len=16, d_model=32, n_layers=1, n_heads=2, d_ff=64),
               image=ViTConfig(image_size=16, patch_size=4, in_channels=3, d_model=32, n_layers=1, n_heads=2, d_ff=64,
                               n_classes=0), embed_dim=16),
    "debug: 16x16 RGB, text and image towers of 1 layer, width 32, embeddings of 16",
)
register_preset(
    "clip-scenes", "clip",
    CLIPConfig(image=ViTConfig(image_size=32, patch_size=8, in_channels=3, d_model=128, n_layers=4, n_heads=4, d_ff=256,
                               n_classes=0, pos="sincos")),
    "scenes: 32x32 RGB, patch 8; text and image towers of 4 layers, width 128; embeddings of 128",
)
register_preset(
    "dit-debug", "dit",
    DiTConfig(image_size=8, patch_size=2, d_model=32, n_layers=1, n_heads=2, d_ff=64, cond_dim=16, cond_tokens=1,
              diffusion=_TINY_DIFFUSION),
    "debug: 8x8 RGB, patch 2, 1 adaLN-Zero block of width 32, 50 timesteps",
)
register_preset(
    "dit-scenes", "dit",
    DiTConfig(d_model=128, n_layers=6, n_heads=4, d_ff=512,
              diffusion=DiffusionConfig(prediction="v", loss_weighting="min_snr")),
    "scenes: 32x32 RGB, patch 4 (64 tokens + 4 condition tokens), 6 adaLN-Zero blocks of width 128, v-prediction",
)
register_preset(
    "prior-debug", "prior",
    PriorConfig(embed_dim=16, text_dim=32, max_text_len=16, d_model=32, n_layers=1, n_heads=2, d_ff=64,
                diffusion=DiffusionConfig(timesteps=50, prediction="x0", clip_x0=None)),
    "debug: 1 block of width 32 over embeddings of 16, 50 timesteps",
)
register_preset("prior-scenes", "prior", PriorConfig(d_model=128, n_layers=4, n_heads=4, d_ff=512),
                "scenes: 4 blocks of width 128 over CLIP embeddings of 128, x0 prediction")
register_preset("verifier-debug", "verifier", VerifierConfig(image_size=16, width=8, hidden=32),
                "debug: 16x16 RGB, CNN of widths 8/16/32")
register_preset("verifier-scenes", "verifier", VerifierConfig(width=24),
                "scenes: 32x32 RGB, CNN of widths 24/48/96, item and colour per position")

register_task("clip", task.CLIPTaskConfig, task.build_clip)
register_task("diffusion-decoder", task.DecoderTaskConfig, task.build_decoder)
register_task("diffusion-prior", task.PriorTaskConfig, task.build_prior)
register_task("scene-verifier", task.VerifierTaskConfig, task.build_verifier)

__all__ = [
    "CLIP",
    "CLIPConfig",
    "DiTConfig",
    "DiffusionConfig",
    "DiffusionDecoder",
    "DiffusionPrior",
    "NoiseSchedule",
    "PriorConfig",
    "SceneVerifier",
    "TextEncoderConfig",
    "UnCLIP",
    "VerifierConfig",
]
