"""Tokenizers (Hugging Face `tokenizers`) and text corpora."""

from nanofm.text.tokenizer import SPECIAL_TOKENS, Tokenizer, train_bpe

__all__ = ["SPECIAL_TOKENS", "Tokenizer", "train_bpe"]
