"""Greedy and beam-search decoding for any sequence-to-sequence model that can decode step by step.

A model decodes incrementally by implementing:
    start(src)                 -> state        encode the source (B, S), set up caches
    step(state, tokens)        -> logits       tokens (N,) are the previous outputs; logits (N, V)
    reorder(state, index, beams_only=False)    keep/duplicate rows of the state (N,) -> (len(index),);
                                               beams_only: rows move only among one source's beams, so
                                               source-side state (encoder memory) can stay as it is
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

    def reorder(self, state: Any, index: Tensor, beams_only: bool = False) -> None: ...


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
    has K ended hypotheses (or at max_len, where the live beams end too). beam_size=1 is greedy search.
    Finished sources leave the batch, so the rows still decoding are the only ones computed."""
    cfg, k, b = model.cfg, beam_size, src.size(0)
    device = src.device
    state = model.start(src)
    model.reorder(state, torch.arange(b, device=device).repeat_interleave(k))
    active = list(range(b))  # the sources still decoding; rows a*K .. a*K+K-1 are source active[a]'s beams
    seqs = torch.full((b * k, 0), cfg.pad_id, dtype=torch.long)  # (N, t) on the CPU
    prev = torch.full((b * k,), cfg.bos_id, dtype=torch.long, device=device)
    scores = torch.zeros(b, k)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    ended: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    for _ in range(max_len):
        logp = F.log_softmax(model.step(state, prev).float(), dim=-1)  # (N, V)
        vocab = logp.size(-1)
        cand = (scores.to(device).view(-1, 1) + logp).view(len(active), k * vocab)
        top_scores, top_idx = (t.cpu() for t in cand.topk(min(2 * k, k * vocab), dim=1))  # (A, 2K)
        top_beam, top_tok = (top_idx // vocab).tolist(), (top_idx % vocab).tolist()
        keep, new_scores, new_beam, new_tok = [], [], [], []
        for a, i in enumerate(active):
            row_scores, row_beam, row_tok = [], [], []
            for j, (score, beam, tok) in enumerate(zip(top_scores[a].tolist(), top_beam[a], top_tok[a])):
                if tok == cfg.eos_id:
                    if j < k and score > float("-inf"):
                        hyp = seqs[a * k + beam].tolist() + [tok]
                        ended[i].append((score / length_penalty(len(hyp), alpha), hyp))
                    continue
                row_scores.append(score), row_beam.append(a * k + beam), row_tok.append(tok)
                if len(row_tok) == k:
                    break
            while len(row_tok) < k:  # tiny vocabularies only: fill with dead beams
                row_scores.append(float("-inf")), row_beam.append(a * k), row_tok.append(cfg.pad_id)
            if len(ended[i]) < k:  # still decoding: keep its K best live continuations
                keep.append(i), new_scores.append(row_scores), new_beam.extend(row_beam), new_tok.extend(row_tok)
        if not keep:
            break
        index = torch.tensor(new_beam)
        model.reorder(state, index.to(device), beams_only=len(keep) == len(active))
        active, scores, seqs = keep, torch.tensor(new_scores), seqs.index_select(0, index)
        prev = torch.tensor(new_tok, device=device)
        seqs = torch.cat([seqs, prev.cpu()[:, None]], dim=1)
    else:  # max_len reached: the live beams of the sources still going end there
        for a, i in enumerate(active):
            for beam in range(k):
                if scores[a, beam] > float("-inf"):
                    hyp = seqs[a * k + beam].tolist()
                    ended[i].append((scores[a, beam].item() / length_penalty(len(hyp), alpha), hyp))
    best = [max(e, key=lambda h: h[0])[1] if e else [cfg.eos_id] for e in ended]
    out = torch.full((b, max(len(h) for h in best)), cfg.pad_id, dtype=torch.long)
    for i, hyp in enumerate(best):
        out[i, : len(hyp)] = torch.tensor(hyp)
    return out.to(device)
