"""Datasets, collators and data preparation recipes."""

from nanofm.data.collate import PadCollate, pad_collate, pad_sequences
from nanofm.data.translation import prepare_translation, read_tsv, write_tsv

__all__ = ["PadCollate", "pad_collate", "pad_sequences", "prepare_translation", "read_tsv", "write_tsv"]
