"""Masked-language-model data: documents packed into [CLS] ... [SEP] blocks, and dynamic whole-word masking.

Word ids give, per token, the word it belongs to (like `tokenizers`' Encoding.word_ids), -1 on tokens
outside any word ([CLS], [SEP], padding; pack_documents also takes None, as `tokenizers` gives). A word
is a maximal run of consecutive tokens with the same word id, so ids may restart (a sentence pair,
packed documents). Special token ids are arguments: the defaults are [PAD]=0, [UNK]=1, [CLS]=2,
[SEP]=3, [MASK]=4.

Legend: B batch, T block length, W words in the batch, K words to choose in a row.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from nanofm.config import require
from nanofm.core.output import IGNORE_INDEX
from nanofm.data.collate import pad_sequences
from nanofm.engine.prefetch import collate_generator


@dataclass
class MaskingConfig:
    mask_prob: float = 0.15  # fraction of the words (of the tokens, without whole_words) of each row to predict
    mask_token_prob: float = 0.8  # of the chosen words, the share replaced by [MASK]
    random_token_prob: float = 0.1  # the share replaced by random non-special tokens; the rest stay as they are
    whole_words: bool = True  # choose words and mask all their sub-words together (BETO); False: single tokens

    def __post_init__(self):
        require(0.0 < self.mask_prob < 1.0, f"mask_prob must be in (0, 1), got {self.mask_prob}", "mask_prob")
        require(self.mask_token_prob >= 0 and self.random_token_prob >= 0 and self.mask_token_prob + self.random_token_prob <= 1,
                "mask_token_prob and random_token_prob must be >= 0 and sum to at most 1", "mask_token_prob", "random_token_prob")


def mask_words(
    tokens: Tensor,
    word_ids: Tensor,
    vocab_size: int,
    mask_id: int = 4,
    special_ids: Sequence[int] = (0, 1, 2, 3, 4),
    cfg: MaskingConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """tokens, word_ids (B, T) -> (inputs (B, T), targets (B, T)).

    In each row, round(mask_prob * words) words (at least one) are chosen uniformly; every sub-word of a
    chosen word gets its original id as target (IGNORE_INDEX elsewhere), and the word as a whole is replaced
    by [MASK] (80%), by random non-special tokens (10%), or kept (10%). BERT's reference code draws the
    80/10/10 per token; here a word is treated as one unit. Special tokens are never chosen, nor drawn as
    random replacements. All randomness comes from `generator` (None: torch's global RNG, which the
    Trainer checkpoints, so resumed runs mask the same way)."""
    cfg = cfg or MaskingConfig()
    specials = torch.tensor(sorted({*special_ids, mask_id}), device=tokens.device)
    valid = (word_ids >= 0) & ~torch.isin(tokens, specials)  # (B, T) tokens that may be chosen
    if cfg.whole_words:
        prev_id = F.pad(word_ids, (1, 0), value=-1)[:, :-1]
        prev_valid = F.pad(valid, (1, 0), value=False)[:, :-1]
        starts = valid & ((word_ids != prev_id) | ~prev_valid)  # (B, T) first sub-word of each word
    else:
        starts = valid
    word = starts.flatten().cumsum(0).view_as(tokens) - 1  # (B, T) index of the word in the batch (W words)
    n_words = starts.sum(1)  # (B,)
    k = (n_words * cfg.mask_prob).round().clamp(min=1).minimum(n_words)  # (B,) K
    scores = torch.rand(tokens.shape, generator=generator, device=tokens.device).masked_fill(~starts, 2.0)
    rank = scores.argsort(1).argsort(1)  # (B, T) a random order of each row's words, other tokens last
    chosen_word = torch.zeros(int(n_words.sum()), dtype=torch.bool, device=tokens.device)  # (W,)
    chosen_word[word[starts & (rank < k[:, None])]] = True
    chosen = valid & chosen_word[word.clamp(min=0)]  # (B, T) every sub-word of a chosen word

    u = torch.rand(chosen_word.shape, generator=generator, device=tokens.device)[word.clamp(min=0)]  # (B, T), per word
    to_mask = chosen & (u < cfg.mask_token_prob)
    to_random = chosen & (u >= cfg.mask_token_prob) & (u < cfg.mask_token_prob + cfg.random_token_prob)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=tokens.device)
    allowed[specials[specials < vocab_size]] = False
    allowed = allowed.nonzero().squeeze(1)  # ids a random replacement may take
    inputs = tokens.masked_fill(to_mask, mask_id)
    draws = torch.randint(len(allowed), (int(to_random.sum()),), generator=generator, device=tokens.device)
    inputs[to_random] = allowed[draws]
    return inputs, tokens.masked_fill(~chosen, IGNORE_INDEX)


@dataclass
class MLMCollator:
    """Examples {"tokens": (T,), "word_ids": (T,), optional "segments": (T,)} -> a batch for BertForMaskedLM:
    {"tokens", "targets"(, "segments")} (B, T), right-padded, masked afresh at every call (dynamic masking).

    seed None draws from the trainer's generator for this micro-batch (engine/prefetch.py: a function of the
    seed, the step and the micro-batch, so different masks every epoch, exact on resume, and the same masks
    whatever the number of processes), or torch's global RNG outside a trainer.
    With a seed, the masks are a function of the seed and the batch's content, the same at every call
    (evaluation: held-out loss and accuracy comparable across steps)."""

    vocab_size: int
    mask_id: int = 4
    pad_id: int = 0
    special_ids: Sequence[int] = (0, 1, 2, 3, 4)  # never masked nor drawn as random tokens ([PAD] and [MASK] always)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    seed: int | None = None

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        tokens = pad_sequences([torch.as_tensor(ex["tokens"]) for ex in examples], self.pad_id)  # (B, T)
        word_ids = pad_sequences([torch.as_tensor(ex["word_ids"]) for ex in examples], -1)  # (B, T)
        generator = collate_generator()
        if self.seed is not None:
            content = zlib.crc32(tokens.numpy().tobytes())
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + content)
        inputs, targets = mask_words(
            tokens, word_ids, self.vocab_size, self.mask_id, (*self.special_ids, self.pad_id), self.masking, generator
        )
        batch = {"tokens": inputs, "targets": targets}
        if "segments" in examples[0]:
            batch["segments"] = pad_sequences([torch.as_tensor(ex["segments"]) for ex in examples], 0)
        return batch


def pack_documents(
    docs: Iterable[tuple[Sequence[int], Sequence[int | None]]],
    max_len: int,
    cls_id: int = 2,
    sep_id: int = 3,
    drop_last: bool = False,
) -> list[dict[str, Tensor]]:
    """Documents, each (token ids, word id per token), -> blocks {"tokens": (L,), "word_ids": (L,)}, L <= max_len.

    As BERT packs its pretraining data: every block is [CLS] content [SEP], the content filled up to
    max_len - 2 tokens with consecutive documents, a [SEP] between two documents inside a block, and a
    document that does not fit continued in the next block. Blocks end at word boundaries (a word longer
    than a whole block is cut), so only the last block, and blocks short of a word that did not fit, are
    shorter than max_len: almost no padding. drop_last drops the last block. Word ids are renumbered from
    0 in each block, -1 on [CLS] and [SEP]."""
    cap = max_len - 2
    if cap < 1:
        raise ValueError(f"max_len must be at least 3, got {max_len}")
    blocks: list[dict[str, Tensor]] = []
    toks: list[int] = []
    words: list[int] = []
    n_words = 0  # words in the current block

    def flush() -> None:
        nonlocal n_words
        blocks.append({"tokens": torch.tensor([cls_id, *toks, sep_id]), "word_ids": torch.tensor([-1, *words, -1])})
        toks.clear(), words.clear()
        n_words = 0

    def add(unit: list[int], is_word: bool) -> None:
        nonlocal n_words
        toks.extend(unit), words.extend([n_words if is_word else -1] * len(unit))
        n_words += is_word

    for doc_tokens, doc_words in docs:
        new_doc = True
        for unit, is_word in _word_runs(doc_tokens, doc_words):
            if toks and len(toks) + (1 if new_doc else 0) + len(unit) > cap:
                flush()
            if new_doc and toks:
                add([sep_id], False)  # document boundary inside the block
            new_doc = False
            while len(unit) > cap - len(toks):  # only for a word longer than a block: cut it
                room = cap - len(toks)
                add(unit[:room], is_word)
                unit = unit[room:]
                flush()
            add(unit, is_word)
    if toks and not drop_last:
        flush()
    return blocks


def _word_runs(tokens: Sequence[int], word_ids: Sequence[int | None]) -> Iterator[tuple[list[int], bool]]:
    """A document's tokens grouped into words (runs of one word id); tokens without a word come one by one."""
    if len(tokens) != len(word_ids):
        raise ValueError(f"a document has {len(tokens)} tokens but {len(word_ids)} word ids")
    run: list[int] = []
    prev: int | None = None
    for tok, w in zip(tokens, word_ids):
        w = None if w is None or w < 0 else int(w)
        if run and (w is None or w != prev):
            yield run, True
            run = []
        if w is None:
            yield [int(tok)], False
        else:
            run.append(int(tok))
        prev = w
    if run:
        yield run, True
