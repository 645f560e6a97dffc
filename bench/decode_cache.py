"""Step-by-step decoding with the key/value cache against recomputing the prefix, at 64 output tokens.

    python bench/decode_cache.py [--preset transformer-small] [--batch 16] [--repeats 5]

Greedy decoding of exactly 64 tokens (EOS ignored) with random weights; median of interleaved repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from nanofm.models import greedy_search
from nanofm.registry import create


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="transformer-small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--src-len", type=int, default=32)
    p.add_argument("--tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.manual_seed(0)
    model = create(args.preset, dropout=0.0).eval()
    src = torch.randint(4, model.cfg.vocab_size, (args.batch, args.src_len))
    times = {True: [], False: []}
    outs = {}
    for _ in range(args.repeats):
        for use_cache in (True, False):
            t = time.perf_counter()
            outs[use_cache] = greedy_search(model, src, args.tokens, use_cache=use_cache, stop_at_eos=False)
            times[use_cache].append(time.perf_counter() - t)
    assert torch.equal(outs[True], outs[False]), "cached and uncached decoding disagree"
    with_cache, without = statistics.median(times[True]), statistics.median(times[False])
    print(f"{args.preset}, batch {args.batch}, {args.tokens} output tokens: with cache {with_cache:.3f} s, "
          f"without {without:.3f} s -> cache is {without / with_cache:.2f}x faster (same outputs)")


if __name__ == "__main__":
    main()
