import pytest
import torch

from nanofm.core.output import IGNORE_INDEX
from nanofm.data.collate import pad_sequences
from nanofm.families.bert.masking import MaskingConfig, MLMCollator, mask_words, pack_documents

V, PAD, UNK, CLS, SEP, MASK = 1000, 0, 1, 2, 3, 4
SPECIALS = (PAD, UNK, CLS, SEP, MASK)


def _docs(n_docs: int, seed: int = 0) -> list[tuple[list[int], list[int]]]:
    """Documents of 5-80 words of 1-3 sub-words each; 5% of the words are a lone [UNK]."""
    g = torch.Generator().manual_seed(seed)
    docs = []
    for _ in range(n_docs):
        tokens, words = [], []
        for w in range(int(torch.randint(5, 81, (1,), generator=g))):
            n = 1 if torch.rand(1, generator=g) < 0.05 else int(torch.randint(1, 4, (1,), generator=g))
            piece = [UNK] if n == 1 and torch.rand(1, generator=g) < 0.1 else torch.randint(5, V, (n,), generator=g).tolist()
            tokens += piece
            words += [w] * len(piece)
        docs.append((tokens, words))
    return docs


def _batch(n_docs=400, max_len=128):
    blocks = pack_documents(_docs(n_docs), max_len)
    return pad_sequences([b["tokens"] for b in blocks], PAD), pad_sequences([b["word_ids"] for b in blocks], -1)


def _words(tokens, word_ids):
    """Every maskable word as (row, [positions])."""
    out = []
    for r, (toks, ids) in enumerate(zip(tokens.tolist(), word_ids.tolist())):
        prev = None
        for t, (tok, w) in enumerate(zip(toks, ids)):
            if w < 0 or tok in SPECIALS:
                prev = None
                continue
            if w != prev:
                out.append((r, []))
            out[-1][1].append(t)
            prev = w
    return out


def test_whole_word_masking_statistics():
    tokens, word_ids = _batch()
    inputs, targets = mask_words(tokens, word_ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(0))
    chosen = targets != IGNORE_INDEX
    assert torch.equal(targets[chosen], tokens[chosen])  # the target is the original token
    words = _words(tokens, word_ids)
    actions, per_row = [], torch.zeros(len(tokens))
    for r, pos in words:
        flags = chosen[r, pos]
        assert flags.all() or not flags.any()  # all sub-words of a word are chosen together
        if flags.all():
            per_row[r] += 1
            got, orig = inputs[r, pos], tokens[r, pos]
            assert (got == MASK).all() or not (got == MASK).any()  # and replaced together
            actions.append("mask" if (got == MASK).all() else "keep" if torch.equal(got, orig) else "random")
            if actions[-1] == "random":
                assert not torch.isin(got, torch.tensor(SPECIALS)).any()
    n_words = torch.bincount(torch.tensor([r for r, _ in words]), minlength=len(tokens))
    assert torch.equal(per_row, (n_words * 0.15).round().clamp(min=1).float())  # 15% of each row's words
    assert abs(len(actions) / len(words) - 0.15) < 0.005 and len(actions) > 2000
    share = {a: actions.count(a) / len(actions) for a in ("mask", "random", "keep")}
    assert abs(share["mask"] - 0.8) < 0.03 and abs(share["random"] - 0.1) < 0.025 and abs(share["keep"] - 0.1) < 0.025
    special = torch.isin(tokens, torch.tensor(SPECIALS))
    assert special.sum() > 500 and (tokens == UNK).sum() > 50
    assert not chosen[special].any() and torch.equal(inputs[special], tokens[special])  # specials never masked
    assert torch.equal(inputs[~chosen], tokens[~chosen])  # nothing else changes


def test_token_masking_without_whole_words():
    tokens, word_ids = _batch(100)
    cfg = MaskingConfig(whole_words=False)
    _, targets = mask_words(tokens, word_ids, V, MASK, SPECIALS, cfg, torch.Generator().manual_seed(0))
    maskable = (word_ids >= 0) & ~torch.isin(tokens, torch.tensor(SPECIALS))
    assert abs((targets != IGNORE_INDEX).sum() / maskable.sum() - 0.15) < 0.005
    with pytest.raises(ValueError):
        MaskingConfig(mask_token_prob=0.8, random_token_prob=0.3)


def test_masking_is_deterministic_given_a_seed():
    tokens, word_ids = _batch(50)

    def run(seed):
        return mask_words(tokens, word_ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(seed))

    assert all(torch.equal(a, b) for a, b in zip(run(1), run(1)))
    assert not torch.equal(run(1)[1], run(2)[1])
    blocks = pack_documents(_docs(20), 64)
    fixed = MLMCollator(V, seed=3)
    assert torch.equal(fixed(blocks)["targets"], fixed(blocks)["targets"])  # evaluation: same masks every time
    assert not torch.equal(fixed(blocks)["targets"], MLMCollator(V, seed=4)(blocks)["targets"])
    dynamic = MLMCollator(V)  # training: torch's global RNG, new masks at every call
    torch.manual_seed(0)
    first, second = dynamic(blocks)["targets"], dynamic(blocks)["targets"]
    torch.manual_seed(0)
    assert torch.equal(dynamic(blocks)["targets"], first) and not torch.equal(first, second)


def test_collator_pads_and_never_targets_padding():
    blocks = pack_documents(_docs(3), 48)
    blocks = [blocks[-1], *blocks[:2]]  # the last block is the short one
    batch = MLMCollator(V, seed=0)(blocks)
    assert set(batch) == {"tokens", "targets"} and batch["tokens"].shape == (3, 48)
    pad = batch["tokens"] == PAD
    assert pad.sum(1).tolist() == [48 - len(b["tokens"]) for b in blocks] and pad[0].sum() > 5
    assert (batch["targets"][pad] == IGNORE_INDEX).all()
    with_segments = MLMCollator(V, seed=0)([{**b, "segments": torch.zeros_like(b["tokens"])} for b in blocks])
    assert with_segments["segments"].shape == (3, 48)


def test_packing_layout():
    docs = [
        ([10, 11, 12, 13], [0, 1, 1, 2]),
        ([20, 21, 22, 23, 24], [0, 0, 0, 1, 2]),  # does not fit after the first: next block, whole
        ([30], [0]),
        ([40], [0]),  # fits after [30], behind a [SEP]
        ([], []),  # empty documents are skipped
    ]
    blocks = pack_documents(docs, max_len=8)
    assert [b["tokens"].tolist() for b in blocks] == [
        [CLS, 10, 11, 12, 13, SEP],
        [CLS, 20, 21, 22, 23, 24, SEP],
        [CLS, 30, SEP, 40, SEP],
    ]
    assert [b["word_ids"].tolist() for b in blocks] == [
        [-1, 0, 1, 1, 2, -1],
        [-1, 0, 0, 0, 1, 2, -1],
        [-1, 0, -1, 1, -1],
    ]
    long_word = pack_documents([(list(range(10, 20)), [0] * 10)], max_len=6)  # a word longer than a block is cut
    assert [b["tokens"].tolist() for b in long_word] == [[CLS, 10, 11, 12, 13, SEP], [CLS, 14, 15, 16, 17, SEP], [CLS, 18, 19, SEP]]
    assert len(pack_documents(docs, max_len=8, drop_last=True)) == 2


def test_packing_fills_blocks_and_keeps_every_token():
    docs = _docs(100)
    blocks = pack_documents(docs, max_len=64)
    for b in blocks:
        tokens, words = b["tokens"], b["word_ids"]
        assert tokens[0] == CLS and tokens[-1] == SEP and len(tokens) <= 64
        assert (words[tokens == SEP] == -1).all() and words[0] == -1
        assert tokens[1] != SEP and tokens[-2] != SEP  # no empty document boundary at a block's edge
    assert all(len(b["tokens"]) >= 64 - 3 for b in blocks[:-1])  # full up to a word (words of <= 3 sub-words)
    content = torch.cat([b["tokens"][1:-1] for b in blocks])
    assert torch.equal(content[content != SEP], torch.tensor([t for doc, _ in docs for t in doc]))
    n_words = sum(len(set(ws)) for _, ws in docs)
    assert sum(int(b["word_ids"].max()) + 1 for b in blocks) == n_words  # no word is split between blocks
