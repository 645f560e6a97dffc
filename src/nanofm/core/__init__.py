"""The shared Transformer core: attention, positions, blocks and stacks, with no task knowledge."""

from nanofm.core.adaptive import AdaLNZeroBlock, AdaptiveLayerNorm
from nanofm.core.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    document_mask,
    document_positions,
    scaled_dot_product_attention,
)
from nanofm.core.block import BlockCache, TransformerBlock
from nanofm.core.layers import DropPath, FeedForward, PatchEmbedding, activation
from nanofm.core.positional import (
    LearnedPositionalEmbedding,
    SinCos2DPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TimestepEmbedding,
    sincos_2d_table,
    sinusoidal_table,
    timestep_features,
)
from nanofm.core.transformer import Decoder, Encoder, TransformerStack, padding_mask_from_lengths

__all__ = [
    "AdaLNZeroBlock",
    "AdaptiveLayerNorm",
    "BlockCache",
    "Decoder",
    "DropPath",
    "Encoder",
    "FeedForward",
    "KVCache",
    "LearnedPositionalEmbedding",
    "MultiHeadAttention",
    "PatchEmbedding",
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
