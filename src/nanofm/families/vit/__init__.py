"""The Vision Transformer and MAE: models, tasks (image-classify, mae), the Hugging Face adapter and the
ImageClassifier predictor. Importing it registers them."""

import dataclasses

from nanofm.families.vit import hf, task
from nanofm.families.vit.mae import (
    MAE,
    MAEConfig,
    MAEPretrainingConfig,
    build_mae,
    load_pretrained_encoder as load_mae_encoder,
    patchify,
    random_masking,
    unpatchify,
)
from nanofm.families.vit.vit import ViT, ViTConfig
from nanofm.registry import register_adapter, register_family, register_preset, register_task

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

register_task("image-classify", task.ImageClassifyTaskConfig, task.build_classify)
register_task("mae", task.MAETaskConfig, task.build_mae)
register_adapter("vit", hf.from_hf, hf.to_hf, (ViT,), "ViT")

__all__ = [
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

