import pytest
import torch
from torch import nn

from nanofm.core import TransformerBlock, causal_mask, padding_mask_from_lengths
from tests.helpers import copy_block, max_diff

B, T, S, D, H, F = 3, 6, 5, 32, 4, 64


@pytest.mark.parametrize("act", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_equals_torch(act, norm_first):
    ref = nn.TransformerEncoderLayer(D, H, F, dropout=0.0, activation=act, batch_first=True, norm_first=norm_first)
    ours = TransformerBlock(D, H, F, dropout=0.0, act=act, norm_first=norm_first)
    copy_block(ours, ref)
    ref.eval(), ours.eval()
    x = torch.randn(B, T, D)
    pad = padding_mask_from_lengths(torch.tensor([6, 3, 1]), T)
    real = ~pad
    with torch.no_grad():
        expected = ref(x, src_key_padding_mask=pad)  # eval may take torch's fast path: compare real tokens
        got, _ = ours(x, padding_mask=pad)
        assert max_diff(got[real], expected[real]) <= 1e-5
        assert max_diff(ours(x)[0], ref(x)) <= 1e-5


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_block_equals_torch(norm_first):
    ref = nn.TransformerDecoderLayer(D, H, F, dropout=0.0, activation="relu", batch_first=True, norm_first=norm_first)
    ours = TransformerBlock(D, H, F, dropout=0.0, act="relu", norm_first=norm_first, cross_attention=True)
    copy_block(ours, ref)
    ref.eval(), ours.eval()
    x, mem = torch.randn(B, T, D), torch.randn(B, S, D)
    tgt_pad = padding_mask_from_lengths(torch.tensor([6, 4, 2]), T)
    mem_pad = padding_mask_from_lengths(torch.tensor([5, 2, 3]), S)
    with torch.no_grad():
        expected = ref(
            x, mem, tgt_mask=~causal_mask(T, T), tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad
        )
        got, _ = ours(x, mem, padding_mask=tgt_pad, is_causal=True, context_padding_mask=mem_pad)
    assert max_diff(got, expected) <= 1e-5


def test_block_returns_attention_weights():
    block = TransformerBlock(D, H, F, cross_attention=True).eval()
    _, w = block(torch.randn(B, T, D), torch.randn(B, S, D), is_causal=True, need_weights=True)
    assert w["self"].shape == (B, H, T, T) and w["cross"].shape == (B, H, T, S)
    assert torch.allclose(w["cross"].sum(-1), torch.ones(B, H, T))
