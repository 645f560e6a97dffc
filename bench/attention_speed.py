"""Speed of nanofm's core against PyTorch's own modules, as ratios measured in one run (median of repeats).

    python bench/attention_speed.py [--repeats 15]

Times forward + backward of: multi-head self-attention (ours vs torch.nn.MultiheadAttention) and a
post-norm encoder block (ours vs torch.nn.TransformerEncoderLayer), float32, on the CPU by default.
A ratio above 1 means nanofm is faster.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from common import recorded
from nanofm.core import MultiHeadAttention, TransformerBlock, padding_mask_from_lengths


def timed(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    args = p.parse_args()
    with recorded():
        run(args)


def run(args: argparse.Namespace) -> None:
    torch.manual_seed(0)
    B, T, D, H = args.batch, args.seq, args.d_model, args.heads
    x = torch.randn(B, T, D, requires_grad=True)
    pad = padding_mask_from_lengths(torch.randint(T // 2, T + 1, (B,)), T)

    cases = {
        "self-attention": (
            lambda: MultiHeadAttention(D, H),
            lambda m: m(x, padding_mask=pad)[0],
            lambda: nn.MultiheadAttention(D, H, batch_first=True),
            lambda m: m(x, x, x, key_padding_mask=pad, need_weights=False)[0],
        ),
        "causal self-attention": (
            lambda: MultiHeadAttention(D, H),
            lambda m: m(x, is_causal=True)[0],
            lambda: nn.MultiheadAttention(D, H, batch_first=True),
            lambda m: m(x, x, x, attn_mask=nn.Transformer.generate_square_subsequent_mask(T), is_causal=True, need_weights=False)[0],
        ),
        "post-norm encoder block": (
            lambda: TransformerBlock(D, H, 4 * D, dropout=0.0, act="gelu"),
            lambda m: m(x, padding_mask=pad)[0],
            lambda: nn.TransformerEncoderLayer(D, H, 4 * D, dropout=0.0, activation="gelu", batch_first=True),
            lambda m: m(x, src_key_padding_mask=pad),
        ),
    }
    print(f"{'case':<26}{'nanofm ms':>11}{'torch ms':>10}{'speed ratio':>13}   (B={B}, T={T}, D={D}, H={H}, fwd+bwd)")
    for name, (make_ours, run_ours, make_ref, run_ref) in cases.items():
        ours, ref = make_ours(), make_ref()

        def step(m, run):
            return lambda: run(m).sum().backward()

        # interleave the two so that machine noise hits both alike
        t_ours, t_ref = [], []
        for _ in range(args.repeats):
            t_ours.append(timed(step(ours, run_ours), 1))
            t_ref.append(timed(step(ref, run_ref), 1))
        a, b = statistics.median(t_ours), statistics.median(t_ref)
        print(f"{name:<26}{a * 1e3:>11.2f}{b * 1e3:>10.2f}{b / a:>12.2f}x")


if __name__ == "__main__":
    main()
