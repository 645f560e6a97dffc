import math

import pytest
import torch

from nanofm.core import (
    FeedForward,
    LearnedPositionalEmbedding,
    PatchEmbedding,
    SinCos2DPositionalEmbedding,
    SinusoidalPositionalEncoding,
    TimestepEmbedding,
    activation,
    sincos_2d_table,
    sinusoidal_table,
    timestep_features,
)


def test_sinusoidal_matches_the_paper_formula():
    d = 16
    table = sinusoidal_table(50, d)
    for pos in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = pos / 10000 ** (2 * i / d)
            assert table[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert table[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)


def test_positional_offset_continues_positions():
    enc = SinusoidalPositionalEncoding(8, max_len=20)
    x = torch.zeros(1, 10, 8)
    assert torch.equal(enc(x)[:, 6:], enc(x[:, :4], offset=6))
    learned = LearnedPositionalEmbedding(8, max_len=10)
    assert torch.equal(learned(x)[:, 3:5], learned(x[:, :2], offset=3))
    with pytest.raises(ValueError, match="max_len"):
        learned(torch.zeros(1, 11, 8))


def test_sincos_2d_encodes_rows_and_columns():
    table = sincos_2d_table(16, 3, 4)  # 3 rows, 4 columns of patches
    assert table.shape == (12, 16)
    grid = table.view(3, 4, 16)
    assert torch.allclose(grid[:, 0, :8], grid[:, 3, :8])  # row half depends on the row only
    assert torch.allclose(grid[0, :, 8:], grid[2, :, 8:])  # column half depends on the column only
    assert len({tuple(r.tolist()) for r in table}) == 12  # every patch distinct
    assert SinCos2DPositionalEmbedding(16, 3, 4)(torch.zeros(2, 12, 16)).shape == (2, 12, 16)


def test_timestep_embedding():
    t = torch.tensor([0, 10, 999])
    feats = timestep_features(t, 8)
    assert torch.allclose(feats[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    assert feats.shape == (3, 8) and timestep_features(t, 9).shape == (3, 9)
    emb = TimestepEmbedding(32)(t)
    assert emb.shape == (3, 32) and not torch.allclose(emb[1], emb[2])


def test_patch_embedding_equals_unfold_then_linear():
    pe = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, d_model=10)
    img = torch.randn(2, 3, 8, 8)
    patches = torch.nn.functional.unfold(img, kernel_size=4, stride=4).transpose(1, 2)  # (B, 4, 48)
    expected = patches @ pe.proj.weight.view(10, -1).T + pe.proj.bias
    assert pe.n_patches == 4 and torch.allclose(pe(img), expected, atol=1e-5)


def test_feed_forward_and_activations():
    ff = FeedForward(8, 32, act="quick_gelu")
    assert ff(torch.randn(2, 3, 8)).shape == (2, 3, 8)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        activation("swish")


def test_alibi_slopes_and_distance_bias():
    """ALiBi's slopes as the paper lists them (8 heads: 1/2 ... 1/256; 12 heads: the 8-head ones, then every other
    of the 16-head ones), one steep head below 8 heads; the bias is -slope * |i - j|. Catches: an off-by-one
    exponent, the 12-head interleave taken from the wrong sequence, a one-sided (causal) distance."""
    from nanofm.core.positional import alibi_slopes, distance_bias

    assert alibi_slopes(8).tolist() == [2.0 ** -i for i in range(1, 9)]
    assert alibi_slopes(12).tolist() == pytest.approx([2.0 ** -i for i in range(1, 9)] + [2.0 ** -(j + 0.5) for j in range(4)])
    assert alibi_slopes(2).tolist() == [0.5, 2.0 ** -5]
    bias = distance_bias(torch.tensor([0.5, 0.25]), 3)
    assert bias[0].tolist() == [[0.0, -0.5, -1.0], [-0.5, 0.0, -0.5], [-1.0, -0.5, 0.0]]
    assert bias[1, 2, 0] == -0.5 and bias.shape == (2, 3, 3)
