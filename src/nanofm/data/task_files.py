"""The files of a fine-tuning task (UTF-8, tab-separated, no header) and the records they hold.

  classification  one example per line: label<TAB>text
  tagging         one word per line: word<TAB>tag, a blank line after each sentence (CoNLL-like)
A malformed line is a DataError naming file and line ("dev.tsv:7: expected 2 tab-separated fields, got 1").
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from nanofm.errors import DataError
from nanofm.text_files import read_user_text, split_lines


class Example(NamedTuple):
    text: str
    label: str
    text_b: str | None = None  # the second sentence of a pair (PAWS-X, XNLI); None for a single text


class TaggedSentence(NamedTuple):
    words: list[str]
    tags: list[str]


class TaskData(NamedTuple):
    name: str
    kind: str  # "classification" (Example) or "tagging" (TaggedSentence)
    metric: str  # "accuracy" or "entity_f1"
    labels: list[str]
    silver: bool
    splits: dict[str, list]  # {"train": [...], "dev": [...], "test": [...]}


def _field_ok(s: str) -> bool:
    return bool(s.strip()) and not any(c in s for c in "\t\n\r")


def write_classification(path: str | Path, examples: Iterable[Example]) -> None:
    lines = []
    for i, (text, label, text_b) in enumerate(examples, 1):
        if text_b is not None:
            raise ValueError(f"{path}: example {i}: a sentence pair; the label<TAB>text format holds single texts")
        if not (_field_ok(text) and _field_ok(label)):
            raise ValueError(f"{path}: example {i}: empty field, or a tab or line break in {label!r} / {text[:40]!r}")
        lines.append(f"{label}\t{text}\n")
    Path(path).write_text("".join(lines), encoding="utf-8", newline="\n")


def write_tagged(path: str | Path, sentences: Iterable[TaggedSentence]) -> None:
    lines = []
    for i, (words, tags) in enumerate(sentences, 1):
        if not words or len(words) != len(tags) or not all(map(_field_ok, [*words, *tags])):
            raise ValueError(f"{path}: sentence {i}: empty, unequal lengths, or a field with a tab or line break")
        lines += [f"{w}\t{t}\n" for w, t in zip(words, tags)] + ["\n"]
    Path(path).write_text("".join(lines), encoding="utf-8", newline="\n")


def numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    yield from enumerate(split_lines(read_user_text(path)), 1)


def two_fields(path: str | Path, n: int, line: str) -> tuple[str, str]:
    fields = line.split("\t")
    if len(fields) != 2:
        raise DataError(f"{path}:{n}: expected 2 tab-separated fields, got {len(fields)}")
    if not (fields[0].strip() and fields[1].strip()):
        raise DataError(f"{path}:{n}: empty field")
    return fields[0], fields[1]


def read_classification(path: str | Path) -> list[Example]:
    """label<TAB>text lines; blank lines are skipped."""
    out = []
    for n, line in numbered_lines(path):
        if line.strip():
            label, text = two_fields(path, n, line)
            out.append(Example(text, label))
    return out


def read_tagged(path: str | Path) -> list[TaggedSentence]:
    """word<TAB>tag lines, sentences separated by blank lines."""
    out, words, tags = [], [], []
    for n, line in numbered_lines(path):
        if not line.strip():
            if words:
                out.append(TaggedSentence(words, tags))
                words, tags = [], []
            continue
        word, tag = two_fields(path, n, line)
        words.append(word)
        tags.append(tag)
    if words:
        out.append(TaggedSentence(words, tags))
    return out
