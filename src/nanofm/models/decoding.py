"""Greedy and beam-search decoding for any sequence-to-sequence model that can decode step by step.

A model decodes incrementally by implementing:
    start(src)                 -> state        encode the source (B, S), set up caches
    step(state, tokens)        -> logits       tokens (N,) are the previous outputs; logits (N, V)
    reorder(state, index)                      keep/duplicate rows of the state (N,) -> (len(index),)
and says its special ids in `model.cfg` (pad_id, bos_id, eos_id).

Legend: B batch, K beam size, N = B*K rows being decoded, V vocabulary, L output length.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor


class IncrementalDecoder(Protocol):
    cfg: Any

    def start(self, src: Tensor, use_cache: bool = True) -> Any: ...

    def step(self, state: Any, tokens: Tensor) -> Tensor: ...

    def reorder(self, state: Any, index: Tensor) -> None: ...


@torch.no_grad()
def greedy_search(
    model: IncrementalDecoder, src: Tensor, max_len: int, use_cache: bool = True, stop_at_eos: bool = True
) -> Tensor:
    """(B, S) -> (B, <= max_len) argmax outputs, EOS included, PAD after it."""
    cfg = model.cfg
    state = model.start(src, use_cache=use_cache)
    prev = torch.full((src.size(0),), cfg.bos_id, dtype=torch.long, device=src.device)
    done = torch.zeros_like(prev, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        prev = model.step(state, prev).argmax(-1).masked_fill(done, cfg.pad_id)  # (B,)
        out.append(prev)
        done |= prev == cfg.eos_id
        if stop_at_eos and bool(done.all()):
            break
    return torch.stack(out, dim=1)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT's ((5 + length) / 6) ** alpha; alpha = 0 ranks by raw log-probability."""
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(
    model: IncrementalDecoder, src: Tensor, beam_size: int = 4, max_len: int = 128, alpha: float = 0.6
) -> Tensor:
    """(B, S) -> (B, L): each source's best hypothesis by log-probability / length_penalty, EOS included,
    PAD-padded. A hypothesis ends when it emits EOS among the K best candidates; a source is done when it
    has K ended hypotheses (or at max_len, where the live beams end too). beam_size=1 is greedy search."""
    cfg, k, b = model.cfg, beam_size, src.size(0)
    device = src.device
    state = model.start(src)
    model.reorder(state, torch.arange(b, device=device).repeat_interleave(k))
    seqs = torch.full((b * k, 0), cfg.pad_id, dtype=torch.long, device=device)  # (N, t)
    prev = torch.full((b * k,), cfg.bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(b, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    done = [False] * b
    for t in range(max_len):
        logp = F.log_softmax(model.step(state, prev).float(), dim=-1)  # (N, V)
        vocab = logp.size(-1)
        cand = (scores.view(-1, 1) + logp).view(b, k * vocab)
        top_scores, top_idx = cand.topk(min(2 * k, k * vocab), dim=1)  # (B, 2K)
        top_beam, top_tok = (top_idx // vocab).tolist(), (top_idx % vocab).tolist()
        top_scores_l = top_scores.tolist()
        new_scores = torch.full((b, k), float("-inf"), device=device)
        new_beam = torch.zeros(b, k, dtype=torch.long)
        new_tok = torch.full((b, k), cfg.pad_id, dtype=torch.long)
        for i in range(b):
            if done[i]:
                continue
            alive = 0
            for j, (score, beam, tok) in enumerate(zip(top_scores_l[i], top_beam[i], top_tok[i])):
                if tok == cfg.eos_id:
                    if j < k and score > float("-inf"):
                        hyp = seqs[i * k + beam].tolist() + [tok]
                        ended[i].append((score / length_penalty(len(hyp), alpha), hyp))
                    continue
                new_scores[i, alive], new_beam[i, alive], new_tok[i, alive] = score, beam, tok
                alive += 1
                if alive == k:
                    break
            done[i] = len(ended[i]) >= k
        if all(done):
            break
        index = (torch.arange(b)[:, None] * k + new_beam).view(-1).to(device)
        model.reorder(state, index)
        prev = new_tok.view(-1).to(device)
        seqs = torch.cat([seqs.index_select(0, index), prev[:, None]], dim=1)
        scores = new_scores
    for i in range(b):  # sources still going at max_len: their live beams end there
        if not done[i]:
            for beam in range(k):
                score = scores[i, beam].item()
                if score > float("-inf"):
                    hyp = seqs[i * k + beam].tolist()
                    ended[i].append((score / length_penalty(len(hyp), alpha), hyp))
    best = [max(e, key=lambda h: h[0])[1] if e else [cfg.eos_id] for e in ended]
    out = torch.full((b, max(len(h) for h in best)), cfg.pad_id, dtype=torch.long)
    for i, hyp in enumerate(best):
        out[i, : len(hyp)] = torch.tensor(hyp)
    return out.to(device)
