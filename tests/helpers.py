"""Shared test helpers: copying torch.nn reference weights into nanofm modules."""

import torch
from torch import nn

from nanofm.core import MultiHeadAttention, TransformerBlock


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@torch.no_grad()
def copy_mha(ours: MultiHeadAttention, ref: nn.MultiheadAttention) -> None:
    """torch packs q, k, v into in_proj_weight (3D, D); ours is qkv_proj (self) or q_proj + kv_proj (cross)."""
    w, b = ref.in_proj_weight, ref.in_proj_bias
    d = w.size(1)
    if ours.cross:
        ours.q_proj.weight.copy_(w[:d]), ours.q_proj.bias.copy_(b[:d])
        ours.kv_proj.weight.copy_(w[d:]), ours.kv_proj.bias.copy_(b[d:])
    else:
        ours.qkv_proj.weight.copy_(w), ours.qkv_proj.bias.copy_(b)
    ours.out_proj.load_state_dict(ref.out_proj.state_dict())


@torch.no_grad()
def copy_block(ours: TransformerBlock, ref: nn.TransformerEncoderLayer | nn.TransformerDecoderLayer) -> None:
    copy_mha(ours.self_attn, ref.self_attn)
    ours.self_attn_norm.load_state_dict(ref.norm1.state_dict())
    ours.ff.fc1.load_state_dict(ref.linear1.state_dict())
    ours.ff.fc2.load_state_dict(ref.linear2.state_dict())
    if isinstance(ref, nn.TransformerDecoderLayer):
        copy_mha(ours.cross_attn, ref.multihead_attn)
        ours.cross_attn_norm.load_state_dict(ref.norm2.state_dict())
        ours.ff_norm.load_state_dict(ref.norm3.state_dict())
    else:
        ours.ff_norm.load_state_dict(ref.norm2.state_dict())
