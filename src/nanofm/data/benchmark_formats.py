"""Readers for the real BETO benchmarks' files as distributed, so that a task folder can hold them as they
come (task.json: {"format": ..., "files": {"train": ..., "dev": ..., "test": ...}}; see load_task).
All UTF-8; a malformed line is a ValueError naming file and line ("esp.train:7: expected ...").

conll2002  NER (esp.train, esp.testa, esp.testb): a token per line, space-separated columns, the word
           first and its BIO tag last; a blank line between sentences; -DOCSTART- lines skipped.
               Melbourne B-LOC
               ( O
           (The files from the CoNLL-2002 site are Latin-1: iconv -f latin1 -t utf-8 esp.train.)
conllu     Universal Dependencies (UPOS): 10 tab-separated columns, word = FORM (2nd), tag = UPOS (4th);
           "#" comments, multiword-token lines (ID 1-2) and empty nodes (ID 8.1) skipped.
               1-2	del	_	_	_	_	_	_	_	_
               1	de	de	ADP	_	_	3	case	_	_
mldoc      one document per line: label<TAB>text, the label CCAT, ECAT, GCAT or MCAT.
               CCAT	La empresa anunció ayer sus resultados.
               GCAT	El Gobierno aprobó la reforma.
pawsx      a header, then id, sentence1, sentence2, label (0 or 1) per line: sentence pairs.
               id	sentence1	sentence2	label
               1	La casa es roja.	Es roja la casa.	1
xnli       XNLI-1.0 dev/test (a header naming language, gold_label, sentence1, sentence2, ...; only the
           "es" rows are kept) or XNLI-MT train (header premise, hypo, label; "contradictory" is read
           as "contradiction"). Columns are found by their header names.
               premise	hypo	label
               El perro duerme.	Un animal descansa.	entailment
pawsx and xnli rows with a sentence missing (empty, or PAWS-X's placeholder "NS": a failed machine
translation) are skipped, as in the published example counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from nanofm.data.task_files import Example, TaggedSentence, numbered_lines, two_fields
from nanofm.errors import DataError

MLDOC_LABELS = ("CCAT", "ECAT", "GCAT", "MCAT")
XNLI_LABELS = ("contradiction", "entailment", "neutral")
MISSING = ("", "NS")  # a sentence a pair file lacks


def _sentences(path: str | Path, parse) -> list[TaggedSentence]:
    """Sentences separated by blank lines; parse(n, line) -> (word, tag), or None to skip the line."""
    out, words, tags = [], [], []
    for n, line in [*numbered_lines(path), (0, "")]:
        if not line.strip():
            if words:
                out.append(TaggedSentence(words, tags))
                words, tags = [], []
        elif (wt := parse(n, line)) is not None:
            words.append(wt[0])
            tags.append(wt[1])
    return out


def read_conll2002(path: str | Path) -> list[TaggedSentence]:
    def parse(n: int, line: str) -> tuple[str, str] | None:
        cols = line.split()
        if cols[0] == "-DOCSTART-":
            return None
        if len(cols) < 2:
            raise DataError(f"{path}:{n}: expected a word and a tag (space-separated), got {line.strip()!r}")
        if not (cols[-1] == "O" or (cols[-1][:2] in ("B-", "I-") and len(cols[-1]) > 2)):
            raise DataError(f"{path}:{n}: expected a BIO tag (O, B-TYPE, I-TYPE) last, got {cols[-1]!r}")
        return cols[0], cols[-1]

    return _sentences(path, parse)


def read_conllu(path: str | Path) -> list[TaggedSentence]:
    def parse(n: int, line: str) -> tuple[str, str] | None:
        if line.startswith("#"):
            return None
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataError(f"{path}:{n}: expected 10 tab-separated columns (CoNLL-U), got {len(cols)}")
        if "-" in cols[0] or "." in cols[0]:  # multiword token, empty node
            return None
        if not cols[0].isdigit() or not cols[1] or not cols[3]:
            raise DataError(f"{path}:{n}: expected a word ID, FORM and UPOS, got {cols[0]!r}, {cols[1]!r}, {cols[3]!r}")
        return cols[1], cols[3]

    return _sentences(path, parse)


def read_mldoc(path: str | Path) -> list[Example]:
    out = []
    for n, line in numbered_lines(path):
        if line.strip():
            label, text = two_fields(path, n, line)
            if label not in MLDOC_LABELS:
                raise DataError(f"{path}:{n}: expected a label {', '.join(MLDOC_LABELS)} first, got {label!r}")
            out.append(Example(text, label))
    return out


def _table(path: str | Path, *need: str) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) for each row of a TSV file whose header names the columns `need`."""
    header = None
    for n, line in numbered_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if header is None:
            if not set(need) <= set(fields):
                raise DataError(f"{path}:{n}: expected a header naming {', '.join(need)}, got {line[:80]!r}")
            header = fields
        elif len(fields) != len(header):
            raise DataError(f"{path}:{n}: expected {len(header)} tab-separated fields as in the header, got {len(fields)}")
        else:
            yield n, dict(zip(header, fields))


def _pair(path: str | Path, n: int, a: str, b: str, label: str, labels: tuple[str, ...]) -> Example | None:
    if label not in labels:
        raise DataError(f"{path}:{n}: expected a label {' or '.join(labels)}, got {label!r}")
    return None if a.strip() in MISSING or b.strip() in MISSING else Example(a, label, b)


def read_pawsx(path: str | Path) -> list[Example]:
    rows = (_pair(path, n, r["sentence1"], r["sentence2"], r["label"], ("0", "1"))
            for n, r in _table(path, "id", "sentence1", "sentence2", "label"))
    return [ex for ex in rows if ex is not None]


def read_xnli(path: str | Path) -> list[Example]:
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # the header tells which of the two files
        mt = "premise" in f.readline().rstrip("\r\n").split("\t")
    if mt:  # XNLI-MT train
        rows = ((n, r["premise"], r["hypo"], r["label"]) for n, r in _table(path, "premise", "hypo", "label"))
    else:  # XNLI-1.0 dev / test, all languages
        rows = ((n, r["sentence1"], r["sentence2"], r["gold_label"])
                for n, r in _table(path, "language", "gold_label", "sentence1", "sentence2") if r["language"] == "es")
    pairs = (_pair(path, n, a, b, {"contradictory": "contradiction"}.get(y, y), XNLI_LABELS) for n, a, b, y in rows)
    return [ex for ex in pairs if ex is not None]


FORMATS = {  # format: (reader, kind)
    "conll2002": (read_conll2002, "tagging"),
    "conllu": (read_conllu, "tagging"),
    "mldoc": (read_mldoc, "classification"),
    "pawsx": (read_pawsx, "classification"),
    "xnli": (read_xnli, "classification"),
}
