import pytest
import torch

from nanofm.core import Decoder, Encoder, padding_mask_from_lengths
from tests.helpers import max_diff

B, T, S, D, H, F, L = 2, 8, 6, 32, 4, 64, 2


def _stacks(norm_first):
    kw = dict(dropout=0.0, norm_first=norm_first)
    return Encoder(L, D, H, F, **kw).eval(), Decoder(L, D, H, F, **kw).eval()


@pytest.mark.parametrize("norm_first", [False, True])
def test_padding_does_not_change_real_tokens(norm_first):
    enc, dec = _stacks(norm_first)
    src, tgt = torch.randn(1, 4, D), torch.randn(1, 5, D)
    mem = enc(src)
    out = dec(tgt, mem)
    # the same sequences, right-padded with garbage and masked
    src_p = torch.cat([src, 100 * torch.randn(1, 3, D)], 1)
    tgt_p = torch.cat([tgt, 100 * torch.randn(1, 2, D)], 1)
    src_pad = padding_mask_from_lengths(torch.tensor([4]), 7)
    tgt_pad = padding_mask_from_lengths(torch.tensor([5]), 7)
    mem_p = enc(src_p, padding_mask=src_pad)
    out_p = dec(tgt_p, mem_p, padding_mask=tgt_pad, context_padding_mask=src_pad)
    assert max_diff(mem_p[:, :4], mem) <= 1e-5
    assert max_diff(out_p[:, :5], out) <= 1e-5


def test_future_tokens_do_not_change_the_past():
    _, dec = _stacks(False)
    x, mem = torch.randn(B, T, D), torch.randn(B, S, D)
    y = x.clone()
    y[:, 5:] = torch.randn(B, T - 5, D)
    assert max_diff(dec(x, mem)[:, :5], dec(y, mem)[:, :5]) <= 1e-6
    assert max_diff(dec(x, mem)[:, 5:], dec(y, mem)[:, 5:]) > 1e-3  # the future itself did change
    enc, _ = _stacks(False)  # the encoder is bidirectional: the past does see the future
    assert max_diff(enc(x)[:, :5], enc(y)[:, :5]) > 1e-3


@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_full_sequence(norm_first):
    _, dec = _stacks(norm_first)
    x, mem = torch.randn(B, T, D), torch.randn(B, S, D)
    mem_pad = padding_mask_from_lengths(torch.tensor([6, 3]), S)
    full = dec(x, mem, context_padding_mask=mem_pad)
    cache = dec.new_cache()
    steps = [dec(x[:, t : t + 1], mem, context_padding_mask=mem_pad, cache=cache) for t in range(T)]
    assert max_diff(torch.cat(steps, 1), full) <= 1e-5
    assert cache[0].self_attn.length == T and cache[0].cross_attn.length == S


def test_decoder_only_and_attention_maps():
    dec = Decoder(L, D, H, F, cross_attention=False, dropout=0.0).eval()
    out, weights = dec(torch.randn(B, T, D), need_weights=True)
    assert out.shape == (B, T, D) and len(weights) == L
    assert weights[0]["self"].shape == (B, H, T, T) and "cross" not in weights[0]
    assert (weights[1]["self"].triu(1) == 0).all()


@pytest.mark.parametrize("norm_first", [False, True])
def test_every_parameter_gets_a_gradient(norm_first):
    enc, dec = _stacks(norm_first)
    src_pad = padding_mask_from_lengths(torch.tensor([6, 4]), S)
    mem = enc(torch.randn(B, S, D), padding_mask=src_pad)
    dec(torch.randn(B, T, D), mem, context_padding_mask=src_pad).pow(2).mean().backward()
    for name, p in [*enc.named_parameters(), *dec.named_parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert (enc.final_norm is not None) == norm_first
