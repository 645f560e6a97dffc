"""Cased WordPiece tokenizer (BERT/BETO style), trained and loaded with Hugging Face `tokenizers`.

Text is NFC-normalised and cleaned (control characters dropped) but neither lowercased nor stripped
of accents, so "Señor", "señor" and "senor" are three different words, as in BETO-cased. Words are
BERT pre-tokens (split at whitespace and around punctuation); continuation pieces start with "##".
Special tokens trained here have fixed ids: [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4 (a loaded
vocabulary may place them anywhere, as Google BERT and BETO do).

    tok = train_wordpiece(["data/corpus-es/train.txt"], vocab_size=8000)
    tok.save("data/corpus-es")                  # tokenizer.json and vocab.txt
    tok = WordPieceTokenizer.load("data/corpus-es")   # a folder, a tokenizer.json or a vocab.txt
    enc = tok.encode("La capital de España es Madrid.")   # [CLS] ... [SEP]
    enc.ids, enc.word_ids, enc.type_ids
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers
from nanofm.errors import DataError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0, 1, 2, 3, 4
DEFAULT_VOCAB_SIZE = 8000  # tiny models; BETO used 31,002


class Encoding(NamedTuple):
    ids: list[int]  # token ids, [CLS] first and [SEP] after each segment
    type_ids: list[int]  # segment ids: 0 for [CLS] A [SEP], 1 for B [SEP]
    word_ids: list[int | None]  # per token: index of the word it belongs to (None for special tokens);
    #                             words are numbered across both segments, so they are unique in a pair


def _pipeline(model: models.Model, lowercase: bool = False, strip_accents: bool | None = False, nfc: bool = True,
              chinese_chars: bool = True) -> HFTokenizer:
    """nanofm's cased pipeline by default; lowercase / strip_accents (None: with lowercase) / nfc=False give
    Google BERT's (what a Hugging Face BERT folder with only vocab.txt means)."""
    tok = HFTokenizer(model)
    bert = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=chinese_chars, strip_accents=strip_accents,
                                      lowercase=lowercase)
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), bert]) if nfc else bert
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    return tok


def _add_post_processor(tok: HFTokenizer) -> None:
    """[CLS] A [SEP] (B [SEP]), so that the saved tokenizer.json behaves like BERT's elsewhere."""
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )


def train_wordpiece(
    files: Sequence[str | Path], vocab_size: int = DEFAULT_VOCAB_SIZE, min_frequency: int = 2, limit_alphabet: int = 1000
) -> "WordPieceTokenizer":
    """Learn a cased WordPiece vocabulary of at most `vocab_size` entries (special tokens included)
    from UTF-8 text files. `limit_alphabet` keeps the most frequent characters; a word holding
    another one becomes [UNK], as in BERT."""
    if vocab_size < len(SPECIAL_TOKENS) + 1:
        raise DataError(f"vocab_size must be more than {len(SPECIAL_TOKENS)}, got {vocab_size}")
    tok = _pipeline(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##"))
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, limit_alphabet=limit_alphabet,
        special_tokens=list(SPECIAL_TOKENS), continuing_subword_prefix="##", show_progress=False,
    )
    tok.train([str(f) for f in files], trainer=trainer)
    # WordPiece encoding depends only on the set of entries, not their ids, so renumber them in a fixed
    # order (special tokens, then sorted). The trainer breaks frequency ties in hash order, so two
    # trainings on the same text may still differ in a few rare entries (about 1% at 8,000).
    rest = sorted(set(tok.get_vocab()) - set(SPECIAL_TOKENS))
    vocab = {t: i for i, t in enumerate([*SPECIAL_TOKENS, *rest])}
    tok = _pipeline(models.WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##"))
    _add_post_processor(tok)
    return WordPieceTokenizer(tok)


class WordPieceTokenizer:
    """Encode text (or pre-split words, for tagging tasks) to ids with word ids for whole-word masking
    and label alignment; decode back. Special ids: pad_id, unk_id, cls_id, sep_id, mask_id."""

    def __init__(self, hf: HFTokenizer):
        ids = [hf.token_to_id(t) for t in SPECIAL_TOKENS]  # ids 0-4 when trained here; any ids in BERT, BETO
        if None in ids:
            raise DataError(f"the vocabulary lacks special tokens {[t for t, i in zip(SPECIAL_TOKENS, ids) if i is None]}")
        hf.add_special_tokens(list(SPECIAL_TOKENS))  # "[MASK]" typed in text is the mask token, never split
        hf.no_padding(), hf.no_truncation()  # encode() pads and truncates itself (some tokenizer.json files pad to 128)
        self.hf = hf
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = ids
        self.special_ids = frozenset(ids)

    @classmethod
    def load(cls, path: str | Path) -> "WordPieceTokenizer":
        """From a folder (its tokenizer.json, else its vocab.txt), a tokenizer.json or a vocab.txt."""
        path = Path(path)
        if path.is_dir():
            path = path / "tokenizer.json" if (path / "tokenizer.json").is_file() else path / "vocab.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such tokenizer file")
        try:
            return cls.from_vocab(path) if path.suffix == ".txt" else cls(HFTokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises plain Exceptions
            raise DataError(f"{path}: not a WordPiece tokenizer file ({e})") from None

    @classmethod
    def from_vocab(cls, path: str | Path, lowercase: bool = False, strip_accents: bool | None = False, nfc: bool = True,
                   chinese_chars: bool = True) -> "WordPieceTokenizer":
        """From a vocab.txt (one token per line, ids in line order) and the normalisation settings of `_pipeline`."""
        tok = _pipeline(models.WordPiece.from_file(str(path), unk_token="[UNK]"), lowercase, strip_accents, nfc, chinese_chars)
        _add_post_processor(tok)
        return cls(tok)

    def save(self, out_dir: str | Path) -> None:
        """Write out_dir/tokenizer.json and out_dir/vocab.txt (one token per line, in id order)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.hf.save(str(out / "tokenizer.json"))
        vocab = sorted(self.hf.get_vocab().items(), key=lambda kv: kv[1])
        (out / "vocab.txt").write_text("".join(t + "\n" for t, _ in vocab), encoding="utf-8", newline="\n")

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str, max_length: int | None = None) -> Encoding:
        """[CLS] text [SEP], truncated to max_length tokens in all."""
        return self._assemble([self.hf.encode(text, add_special_tokens=False)], max_length)

    def encode_pair(self, a: str, b: str, max_length: int | None = None) -> Encoding:
        """[CLS] a [SEP] b [SEP] with segment ids 0 then 1; truncated longest-first to max_length."""
        return self._assemble([self.hf.encode(t, add_special_tokens=False) for t in (a, b)], max_length)

    def encode_words(self, words: Sequence[str], max_length: int | None = None) -> Encoding:
        """[CLS] words [SEP] for text already split into words (POS / NER): word_ids index `words`, so
        a word's label goes on its first token (a word that is only punctuation may be one token)."""
        return self._assemble([self.hf.encode(list(words), is_pretokenized=True, add_special_tokens=False)], max_length)

    def _assemble(self, parts: list, max_length: int | None) -> Encoding:
        segs = [(list(p.ids), list(p.word_ids)) for p in parts]
        if max_length is not None:
            budget = max_length - 1 - len(segs)  # [CLS] and one [SEP] per segment
            if budget < 0:
                raise ValueError(f"max_length {max_length} leaves no room for the special tokens")
            while sum(len(ids) for ids, _ in segs) > budget:  # drop from the end of the longest segment
                longest = max(range(len(segs)), key=lambda i: len(segs[i][0]))
                segs[longest][0].pop()
                segs[longest][1].pop()
        ids, type_ids, word_ids = [self.cls_id], [0], [None]
        offset = 0
        for seg, (seg_ids, seg_words) in enumerate(segs):
            ids += seg_ids + [self.sep_id]
            type_ids += [seg] * (len(seg_ids) + 1)
            word_ids += [w + offset for w in seg_words] + [None]
            offset += max((w for w in seg_words if w is not None), default=-1) + 1
        return Encoding(ids, type_ids, word_ids)

    def tokens(self, ids: Sequence[int]) -> list[str]:
        return [self.hf.id_to_token(i) for i in ids]

    def token_to_id(self, token: str) -> int | None:
        return self.hf.token_to_id(token)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        """Ids -> text ("##" pieces joined, spaces before punctuation removed); [PAD] [CLS] [SEP] are
        skipped unless skip_special_tokens is False; no space after ¿ and ¡; [MASK] and [UNK] are always shown."""
        keep = [i for i in ids if not (skip_special_tokens and i in (self.pad_id, self.cls_id, self.sep_id))]
        return re.sub(r"([¿¡]) ", r"\1", self.hf.decode(keep, skip_special_tokens=False))  # Spanish opening marks
