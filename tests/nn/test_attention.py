import pytest
import torch
from torch import nn

from nanofm.core import KVCache, MultiHeadAttention, causal_mask, padding_mask_from_lengths, scaled_dot_product_attention
from tests.helpers import copy_mha, max_diff

B, T, S, D, H = 3, 7, 5, 32, 4


def _pair(cross=False):
    ref = nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention(D, H, cross=cross).eval()
    copy_mha(ours, ref)
    return ours, ref


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("masks", ["none", "padding", "causal", "padding+causal"])
def test_self_attention_equals_torch(masks, need_weights):
    ours, ref = _pair()
    x = torch.randn(B, T, D)
    pad = padding_mask_from_lengths(torch.tensor([7, 4, 2]), T) if "padding" in masks else None
    causal = "causal" in masks
    ref_mask = ~causal_mask(T, T) if causal else None  # torch's bool attn_mask: True = NOT allowed
    expected, ref_w = ref(x, x, x, key_padding_mask=pad, attn_mask=ref_mask, average_attn_weights=False)
    got, w = ours(x, padding_mask=pad, is_causal=causal, need_weights=need_weights)
    assert max_diff(got, expected) <= 1e-5
    if need_weights:
        assert max_diff(w, ref_w) <= 1e-5


@pytest.mark.parametrize("padding", [False, True])
def test_cross_attention_equals_torch(padding):
    ours, ref = _pair(cross=True)
    x, mem = torch.randn(B, T, D), torch.randn(B, S, D)
    pad = padding_mask_from_lengths(torch.tensor([5, 3, 1]), S) if padding else None
    expected, _ = ref(x, mem, mem, key_padding_mask=pad)
    got, _ = ours(x, mem, padding_mask=pad)
    assert max_diff(got, expected) <= 1e-5


def test_fused_equals_explicit_and_weights_are_distributions():
    q, k, v = torch.randn(2, H, T, 8), torch.randn(2, H, S, 8), torch.randn(2, H, S, 8)
    mask = torch.rand(2, 1, T, S) > 0.4
    mask[0, 0, 3] = False  # a query with every key masked
    fused, none = scaled_dot_product_attention(q, k, v, mask)
    explicit, w = scaled_dot_product_attention(q, k, v, mask, need_weights=True)
    assert none is None
    assert max_diff(fused, explicit) <= 1e-5
    has_key = mask.any(-1).expand(2, H, T)
    assert torch.allclose(w.sum(-1)[has_key], torch.ones(()), atol=1e-6)
    assert (w.sum(-1)[~has_key] == 0).all() and (fused[0, :, 3] == 0).all()
    assert (w.masked_select(~mask.expand_as(w)) == 0).all()
    for causal in (False, True):
        a, _ = scaled_dot_product_attention(q, k[:, :, :T], v[:, :, :T], is_causal=causal)
        b, _ = scaled_dot_product_attention(q, k[:, :, :T], v[:, :, :T], is_causal=causal, need_weights=True)
        assert max_diff(a, b) <= 1e-5


def test_module_fused_equals_explicit_with_masks():
    ours, _ = _pair()
    x = torch.randn(B, T, D)
    pad = padding_mask_from_lengths(torch.tensor([7, 4, 2]), T)
    a, _ = ours(x, padding_mask=pad, is_causal=True)
    b, w = ours(x, padding_mask=pad, is_causal=True, need_weights=True)
    assert max_diff(a, b) <= 1e-5
    assert (w.triu(1) == 0).all()  # no weight on future keys


def test_self_attention_cache_equals_full():
    ours, _ = _pair()
    x = torch.randn(B, T, D)
    full, _ = ours(x, is_causal=True)
    cache = KVCache()
    steps = [ours(x[:, t : t + 1], is_causal=True, cache=cache)[0] for t in range(T)]
    assert cache.length == T
    assert max_diff(torch.cat(steps, 1), full) <= 1e-5
    # a prefix at once, then the rest one by one
    cache = KVCache()
    first, _ = ours(x[:, :4], is_causal=True, cache=cache)
    rest = [ours(x[:, t : t + 1], is_causal=True, cache=cache)[0] for t in range(4, T)]
    assert max_diff(torch.cat([first, *rest], 1), full) <= 1e-5


def test_cross_attention_cache_projects_memory_once():
    ours, _ = _pair(cross=True)
    x, mem = torch.randn(B, T, D), torch.randn(B, S, D)
    full, _ = ours(x, mem)
    cache = KVCache()
    steps = [ours(x[:, t : t + 1], mem if t == 0 else None, cache=cache)[0] for t in range(T)]
    assert cache.static and cache.length == S
    assert max_diff(torch.cat(steps, 1), full) <= 1e-5


def test_cache_reorder_selects_rows():
    cache = KVCache()
    k = torch.arange(3.0).view(3, 1, 1, 1).expand(3, 2, 4, 8)
    cache.append(k, k)
    cache.reorder(torch.tensor([2, 2, 0]))
    assert cache.k[:, 0, 0, 0].tolist() == [2.0, 2.0, 0.0]


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="context"):
        MultiHeadAttention(D, H, cross=True)(torch.randn(1, 2, D))


@pytest.mark.parametrize("need_weights", [False, True])
def test_additive_bias_equals_softmax_of_biased_scores(need_weights):
    """A float attn_mask is added to the scores (ALiBi's distance bias), padding and causality still apply, and
    a query left without keys gets zeros. Catches: a float mask read as bool (any non-zero allowed), a bias
    dropped by the padding or causal combination, or added after the softmax."""
    q, k, v = torch.randn(2, H, T, 8), torch.randn(2, H, T, 8), torch.randn(2, H, T, 8)
    bias = torch.randn(H, T, T)
    pad = padding_mask_from_lengths(torch.tensor([T, 3]), T)  # (B, T) True at padding keys
    allowed = ~pad[:, None, None, :] & causal_mask(T, T)  # (B, 1, T, T)
    scores = (q @ k.transpose(-2, -1)) / 8 ** 0.5 + bias
    expected = torch.softmax(scores.masked_fill(~allowed, float("-inf")), -1) @ v
    mha = MultiHeadAttention(D, H)
    got, _ = mha._attend(q, k, v, bias, pad, True, need_weights)  # (B, T, D): heads merged
    assert max_diff(got, expected.transpose(1, 2).reshape(2, T, H * 8)) <= 1e-5
    unbiased, _ = mha._attend(q, k, v, None, pad, True, need_weights)
    assert max_diff(got, unbiased) > 1e-2  # the bias changed something
    blocked = bias.clone()
    blocked[:, 2] = float("-inf")  # query 2 may attend no key
    out, w = scaled_dot_product_attention(q, k, v, blocked, need_weights=need_weights)
    assert (out[:, :, 2] == 0).all() and not out.isnan().any()
