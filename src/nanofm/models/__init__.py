"""Model families, composed from the shared core; importing this registers them and their presets, and gives
the registry's lookups: `create(name, **overrides)`, `get_config`, `get_preset`, `presets`."""

import dataclasses

from nanofm.registry import create, get_config, get_preset, presets, register_family, register_preset

from .decoding import beam_search, greedy_search
from .encoder_decoder import EncoderDecoder, EncoderDecoderConfig
from .output import IGNORE_INDEX, ModelOutput
from .seq2seq_rnn import Seq2SeqRNN, Seq2SeqRNNConfig

register_family("encoder-decoder", EncoderDecoderConfig, EncoderDecoder)
register_preset(
    "transformer-tiny",
    "encoder-decoder",
    EncoderDecoderConfig(vocab_size=32, d_model=64, n_heads=4, n_encoder_layers=2, n_decoder_layers=2, d_ff=256, dropout=0.0, max_len=64),
    "debug: 2+2 layers, width 64, 4 heads (tests, the copy task)",
)
register_preset(
    "transformer-small",
    "encoder-decoder",
    EncoderDecoderConfig(vocab_size=8000, d_model=256, n_heads=4, n_encoder_layers=3, n_decoder_layers=3, d_ff=1024, label_smoothing=0.1),
    "laptop: 3+3 layers, width 256, 4 heads",
)
register_preset(
    "transformer-base",
    "encoder-decoder",
    EncoderDecoderConfig(vocab_size=37000, label_smoothing=0.1),
    "the paper's base model: 6+6 layers, width 512, 8 heads, feed-forward 2048",
)

register_family("seq2seq-rnn", Seq2SeqRNNConfig, Seq2SeqRNN)
register_preset(
    "rnn-tiny",
    "seq2seq-rnn",
    Seq2SeqRNNConfig(vocab_size=32, d_embed=32, d_hidden=64, d_attn=32, dropout=0.0, max_len=64),
    "debug: GRU 64 with additive attention (tests)",
)
register_preset(
    "rnn-small",
    "seq2seq-rnn",
    Seq2SeqRNNConfig(vocab_size=8000, d_embed=256, d_hidden=256, d_attn=256, dropout=0.1),
    "laptop: bidirectional GRU 256, additive attention",
)
register_preset(
    "rnn-base",
    "seq2seq-rnn",
    Seq2SeqRNNConfig(vocab_size=30000, d_embed=620, d_hidden=1000, d_attn=1000, dropout=0.1),
    "Bahdanau et al. 2015 (RNNsearch): embeddings 620, GRU 1000",
)

__all__ = [
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "IGNORE_INDEX",
    "ModelOutput",
    "Seq2SeqRNN",
    "Seq2SeqRNNConfig",
    "beam_search",
    "create",
    "get_config",
    "get_preset",
    "greedy_search",
    "presets",
]

from .bert import (  # noqa: E402
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertModel,
    load_pretrained_encoder,
)

# `create("bert-mini")` builds the pretraining model (BertForMaskedLM); the fine-tuning models take the
# same config: BertForSequenceClassification(get_config("bert-mini", n_labels=5)).
register_family("bert", BertConfig, BertForMaskedLM)
register_preset(
    "bert-tiny-debug",
    "bert",
    BertConfig(vocab_size=128, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_len=64, dropout=0.0, attn_dropout=0.0),
    "debug: 2 layers, width 32, 4 heads (tests)",
)
for _name, _layers, _width in [("tiny", 2, 128), ("mini", 4, 256), ("small", 4, 512), ("medium", 8, 512), ("base", 12, 768)]:
    register_preset(
        f"bert-{_name}",
        "bert",
        BertConfig(d_model=_width, n_layers=_layers, n_heads=_width // 64, d_ff=4 * _width),
        f"{'BERT-base' if _name == 'base' else 'Google BERT miniature'}: {_layers} layers, width {_width}, "
        f"{_width // 64} heads, feed-forward {4 * _width}",
    )

__all__ += [
    "BertConfig",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertModel",
    "load_pretrained_encoder",
]

from .mae import (  # noqa: E402
    MAE,
    MAEConfig,
    MAEPretrainingConfig,
    build_mae,
    load_pretrained_encoder as load_mae_encoder,
    patchify,
    random_masking,
    unpatchify,
)
from .vit import ViT, ViTConfig  # noqa: E402

# `create("vit-fmnist-s")` builds a classifier; `create("mae-fmnist-s")` an MAE around a head-less ViT whose
# weights fine-tune a ViT built from the same encoder config: ViT(replace(cfg.encoder, n_classes=10)).
register_family("vit", ViTConfig, ViT)
_VIT = {  # name: (config, description); Fashion-MNIST presets use MLP ratio 2 (d_ff = 2 * d_model), DeiT 4
    "vit-debug": (ViTConfig(patch_size=7, d_model=32, n_layers=2, n_heads=2, d_ff=64), "debug: 28x28, patch 7, 2 layers, width 32, 2 heads"),
    "vit-fmnist-xs": (
        ViTConfig(patch_size=4, d_model=96, n_layers=4, n_heads=3, d_ff=192),
        "Fashion-MNIST, fast on CPU: 28x28, patch 4 (49 patches), 4 layers, width 96, 3 heads, feed-forward 192",
    ),
    "vit-fmnist-s": (
        ViTConfig(patch_size=4, d_model=128, n_layers=6, n_heads=4, d_ff=256),
        "Fashion-MNIST: 28x28, patch 4 (49 patches), 6 layers, width 128, 4 heads, feed-forward 256",
    ),
    "vit-tiny": (
        ViTConfig(
            image_size=224, patch_size=16, in_channels=3, d_model=192, n_layers=12, n_heads=3, d_ff=768, n_classes=1000, drop_path=0.1
        ),
        "DeiT-Ti: 224x224 RGB, patch 16, 12 layers, width 192, 3 heads, feed-forward 768, 1000 classes, drop path 0.1",
    ),
}
for _name, (_cfg, _desc) in _VIT.items():
    register_preset(_name, "vit", _cfg, _desc)

register_family("mae", MAEPretrainingConfig, build_mae)
_MAE = {  # name: (encoder preset, decoder, description); MAEConfig() is 2 blocks of width 128
    "mae-debug": ("vit-debug", MAEConfig(decoder_dim=32, decoder_layers=1, decoder_heads=2, decoder_d_ff=64), "1 block, width 32"),
    "mae-fmnist-xs": ("vit-fmnist-xs", MAEConfig(decoder_dim=64, decoder_d_ff=256), "2 blocks, width 64"),
    "mae-fmnist-s": ("vit-fmnist-s", MAEConfig(), "2 blocks, width 128"),
}
for _name, (_vit, _mae, _desc) in _MAE.items():
    _encoder = dataclasses.replace(_VIT[_vit][0], n_classes=0, pos="sincos")  # head-less, fixed positions (MAE)
    register_preset(_name, "mae", MAEPretrainingConfig(_encoder, _mae), f"MAE of {_vit} (sin-cos positions), mask 75%, decoder {_desc}")

__all__ += [
    "MAE",
    "MAEConfig",
    "MAEPretrainingConfig",
    "ViT",
    "ViTConfig",
    "build_mae",
    "load_mae_encoder",
    "patchify",
    "random_masking",
    "unpatchify",
]

from .clip import CLIP, CLIPConfig, TextEncoderConfig  # noqa: E402
from .diffusion import DiffusionConfig, NoiseSchedule  # noqa: E402
from .dit import DiffusionDecoder, DiTConfig  # noqa: E402
from .prior import DiffusionPrior, PriorConfig  # noqa: E402
from .unclip import UnCLIP  # noqa: E402
from .verifier import SceneVerifier, VerifierConfig  # noqa: E402

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

__all__ += [
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
