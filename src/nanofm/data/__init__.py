"""Datasets, collators and data preparation recipes."""

from .collate import PadCollate, pad_collate, pad_sequences

__all__ = ["PadCollate", "pad_collate", "pad_sequences"]
