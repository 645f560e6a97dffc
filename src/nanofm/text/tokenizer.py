"""Subword tokenizers: byte-pair encoding trained with Hugging Face `tokenizers`, saved as tokenizer.json.

Text is NFC-normalised and split SentencePiece-style (a "▁" marks a word start), so decoding restores
the spaces exactly. Characters never seen in training become [UNK] (decoded as "⁇").
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, trainers
from nanofm.errors import DataError

SPECIAL_TOKENS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")  # ids 0, 1, 2, 3


def train_bpe(texts: Iterable[str], vocab_size: int, min_frequency: int = 2) -> "Tokenizer":
    """Learn a BPE vocabulary of `vocab_size` from `texts` (deterministic for the same texts in the same order)."""
    tok = HFTokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=list(SPECIAL_TOKENS), show_progress=False
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return Tokenizer(tok)


class Tokenizer:
    """A thin wrapper: ids for the special tokens, batch encode / decode, save / load."""

    def __init__(self, hf: HFTokenizer):
        self.hf = hf
        ids = [hf.token_to_id(t) for t in SPECIAL_TOKENS]
        if ids != [0, 1, 2, 3]:
            raise ValueError(f"tokenizer special tokens {SPECIAL_TOKENS} must have ids 0-3, got {ids}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        path = Path(path)
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises plain Exceptions
            raise DataError(f"{path}: not a tokenizer.json file ({e})") from None

    def save(self, path: str | Path) -> None:
        self.hf.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.hf.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.hf.encode_batch(texts, add_special_tokens=False)]

    def tokens(self, ids: list[int]) -> list[str]:
        return [self.hf.id_to_token(i) for i in ids]

    def decode(self, ids: list[int]) -> str:
        """Ids -> text, stopping at the first EOS and skipping PAD / BOS; [UNK] shows as ⁇."""
        out = []
        for i in ids:
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id):
                continue
            out.append(i)
        text = self.hf.decode(out, skip_special_tokens=False)
        return text.replace("[UNK]", "⁇")
