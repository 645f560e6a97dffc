"""The shared Transformer core: attention, positions, blocks and stacks, with no task knowledge."""

from .adaptive import AdaLNZeroBlock, AdaptiveLayerNorm
from .attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    document_mask,
    document_positions,
    scaled_dot_product_attention,
)
from .block import BlockCache, TransformerBlock
from .heads import ClassificationHead, MLMHead, Pooler
from .layers import DropPath, FeedForward, PatchEmbedding, activation
from .positional import (
    LearnedPositionalEmbedding,
    SinCos2DPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TimestepEmbedding,
    sincos_2d_table,
    sinusoidal_table,
    timestep_features,
)
from .transformer import Decoder, Encoder, TransformerStack, padding_mask_from_lengths

__all__ = [
    "AdaLNZeroBlock",
    "AdaptiveLayerNorm",
    "BlockCache",
    "ClassificationHead",
    "Decoder",
    "DropPath",
    "Encoder",
    "FeedForward",
    "KVCache",
    "LearnedPositionalEmbedding",
    "MLMHead",
    "MultiHeadAttention",
    "PatchEmbedding",
    "Pooler",
    "SinCos2DPositionalEmbedding",
    "SinusoidalPositionalEncoding",
    "TimestepEmbedding",
    "TransformerBlock",
    "TransformerStack",
    "activation",
    "causal_mask",
    "document_mask",
    "document_positions",
    "padding_mask_from_lengths",
    "scaled_dot_product_attention",
    "sincos_2d_table",
    "sinusoidal_table",
    "timestep_features",
]
