"""Datasets, collators and data preparation recipes."""

from .collate import pad_sequences

__all__ = ["pad_sequences"]
