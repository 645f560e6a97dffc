"""The lecture's model families, one folder each: seq2seq (the Transformer encoder-decoder and the RNN with
attention), bert, vit (ViT and MAE) and t2i (CLIP, diffusion prior and decoder, unCLIP). Each folder holds its
configs and presets, its models, its tasks, its Hugging Face adapter and its predictors, and registers them in
nanofm.registry when imported; importing this package imports them all and gives the registry's lookups:

    from nanofm.families import create, presets
    model = create("bert-mini", n_layers=2)
"""

from nanofm.families import bert, seq2seq, t2i, vit  # noqa: F401  (each registers itself)
from nanofm.registry import create, get_config, get_preset, presets

__all__ = ["create", "get_config", "get_preset", "presets"]
