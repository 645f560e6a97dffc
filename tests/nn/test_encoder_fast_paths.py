"""Encoder inference fast paths (core/fast.py: query_positions, skip_padding) equal the plain path where they are read."""

import pytest
import torch

from nanofm.core import Decoder, Encoder, padding_mask_from_lengths
from nanofm.core.fast import TokenLayout, encode
from tests.helpers import max_diff

B, T, D, H, F, L = 3, 10, 32, 4, 64, 3


def _encoder(norm_first):
    torch.manual_seed(0)
    enc = Encoder(L, D, H, F, dropout=0.0, norm_first=norm_first).eval()
    with torch.no_grad():  # biases and norms away from 0 / 1
        for p in enc.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return enc


def _batch():
    x = torch.randn(B, T, D)
    pad = padding_mask_from_lengths(torch.tensor([T, 7, 3]), T)
    return x, pad


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@torch.no_grad()
def test_query_positions_equal_plain_path(norm_first, padded):
    enc = _encoder(norm_first)
    x, pad = _batch()
    pad = pad if padded else None
    plain = enc(x, padding_mask=pad)  # (B, T, D)
    for sel in (slice(0, 1), slice(2, 5), torch.tensor([0, 2])):
        fast = encode(enc, x, padding_mask=pad, query_positions=sel)
        assert fast.shape == plain[:, sel].shape
        assert max_diff(fast, plain[:, sel]) <= 1e-5


@pytest.mark.parametrize("norm_first", [False, True])
@torch.no_grad()
def test_skip_padding_equals_plain_path(norm_first):
    enc = _encoder(norm_first)
    x, pad = _batch()
    plain = enc(x, padding_mask=pad)
    fast = encode(enc, x, padding_mask=pad, skip_padding=True)
    real = ~pad
    assert fast.shape == plain.shape
    assert max_diff(fast[real], plain[real]) <= 1e-5
    assert fast[pad].abs().max() == 0  # padding rows come back as zeros
    both = encode(enc, x, padding_mask=pad, skip_padding=True, query_positions=slice(0, 1))
    assert max_diff(both, plain[:, :1]) <= 1e-5
    # a block-diagonal attn_mask (B, 1, T, T) is sliced to the query rows
    doc = torch.tensor([[0] * 5 + [1] * 5, [0] * 3 + [1] * 7, [0] * 10])
    mask = doc[:, None, :, None] == doc[:, None, None, :]
    plain = enc(x, padding_mask=pad, attn_mask=mask)
    fast = encode(enc, x, padding_mask=pad, attn_mask=mask, skip_padding=True, query_positions=slice(5, 8))
    sel = real[:, 5:8]  # the real positions among the queries (padding rows are never read)
    assert max_diff(fast[sel], plain[:, 5:8][sel]) <= 1e-5
    # skip_padding without padding is the plain path
    assert max_diff(encode(enc, x, skip_padding=True), enc(x)) <= 1e-5


@torch.no_grad()
def test_fast_paths_give_the_same_gradients():
    """Inputs and every weight get the gradients of the plain path read at [CLS]."""
    enc = _encoder(False)
    x, pad = _batch()
    with torch.enable_grad():
        xg = x.clone().requires_grad_()
        encode(enc, xg, padding_mask=pad, query_positions=slice(0, 1), skip_padding=True).sum().backward()
        g_fast = xg.grad.clone()
        w_fast = {n: p.grad.clone() for n, p in enc.named_parameters()}
        xg.grad = None
        enc.zero_grad()
        enc(xg, padding_mask=pad)[:, :1].sum().backward()
    assert max_diff(g_fast, xg.grad) <= 1e-5
    for name, p in enc.named_parameters():
        assert max_diff(w_fast[name], p.grad) <= 1e-4, name


def test_fast_paths_refuse_causal_and_cross():
    x = torch.randn(1, 4, D)
    # the bug it catches: a shortcut that silently drops the causal mask or the cross-attention sublayer
    with pytest.raises(ValueError):
        encode(Decoder(1, D, H, F, cross_attention=False), x, query_positions=slice(0, 1))
    with pytest.raises(ValueError):
        encode(Decoder(1, D, H, F), x, skip_padding=True)
    layout = TokenLayout.from_padding_mask(torch.zeros(1, 4, dtype=torch.bool))
    assert max_diff(layout.pad(layout.pack(x)), x) == 0
