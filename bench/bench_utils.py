"""Synthetic documents of natural lengths for the packing measurements (bench/ablations.py)."""

from __future__ import annotations

import torch


def mlm_docs(n_tokens: int, max_len: int, vocab: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Documents [CLS] w ... w [SEP] with about n_tokens tokens in all, lengths log-normal around max_len / 3
    (clipped to [8, max_len]): like sentences and short paragraphs, most shorter than a block."""
    g = torch.Generator().manual_seed(seed)
    docs, total = [], 0
    while total < n_tokens:
        n = int(torch.empty(1).log_normal_(mean=0.0, std=0.6, generator=g).item() * max_len / 3)
        n = max(8, min(max_len, n))
        tokens = torch.randint(5, vocab, (n,), generator=g)
        tokens[0], tokens[-1] = 2, 3
        word_ids = torch.arange(n)
        word_ids[0] = word_ids[-1] = -1
        docs.append({"tokens": tokens, "word_ids": word_ids})
        total += n
    return docs
