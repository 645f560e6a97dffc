"""Greedy decoding with the key/value cache against recomputing the prefix at every step (nanofm both).

    python bench/decode.py [--quick] [--repeats 5] [--preset transformer-small] [--batch 16] [--tokens 64]

Exactly `tokens` output tokens (EOS ignored), random weights, a source of 32 tokens; the two must give
the same outputs (checked). Figure: seconds per generation (lower is better); ratio = uncached / cached.
"""

from __future__ import annotations

import argparse

import torch

from common import Case, main_for
from nanofm.families import create
from nanofm.families.seq2seq.decoding import greedy_search


def cases(args: argparse.Namespace) -> list[Case]:
    preset, batch, tokens, src_len = ("transformer-tiny", 2, 8, 8) if args.quick else (args.preset, args.batch, args.tokens, 32)
    torch.manual_seed(0)
    model = create(preset, dropout=0.0).to(args.device).eval()
    src = torch.randint(4, model.cfg.vocab_size, (batch, src_len), device=args.device)
    outputs = {}

    def make(use_cache: bool):
        def call():
            outputs[use_cache] = greedy_search(model, src, tokens, use_cache=use_cache, stop_at_eos=False)

        return lambda: call

    def check():
        assert torch.equal(outputs[True], outputs[False]), "cached and uncached decoding disagree"

    return [Case(f"greedy decoding, {tokens} tokens ({preset}, B={batch}), cache vs none", "s", 1, make(True), make(False),
                 "nanofm without the cache (same outputs)", training=False, flops=0.0, check=check)]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="transformer-small")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=64)


if __name__ == "__main__":
    main_for(cases, __doc__.splitlines()[0], add_args)
