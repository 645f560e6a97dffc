"""A clean Spanish corpus for masked-language-model pretraining, from Debian packages or your own files.

    prepare_corpus("data/corpus-es")                        # train.txt, valid.txt, stats.json (+ tokenizer)
    prepare_corpus("data/mine", sources=(), inputs=["notes/"])  # your own text files

A document is kept whole, one paragraph (or verse, or table row) per line:
  bible        a chapter of the Reina-Valera 1909 (sword-text-sparv), one verse per line;
  manpages     a man page (manpages-es), roff stripped, one paragraph per line;
  libreoffice  a help page (libreoffice-help-es), one paragraph or heading per line;
  fortunes     one fortune entry (fortunes-es), on one line;
  input        one of your files, or (blocks=True) one blank-line-separated block of it.
Lines are whitespace-normalised; lines of the Debian sources that look English (untranslated
paragraphs, see `looks_english`) are dropped. Documents go to valid when a hash of "source:id" falls below
valid_fraction (stable: adding documents does not move others), else to train. Then exact duplicates
are dropped: a document equal to an earlier one, and (dedup_paragraphs) a line equal to a line seen
before, valid first, so no line of valid is also in train; a document left empty is dropped.

Files: train.txt and valid.txt (UTF-8, one document per block, blocks separated by one blank line, in
(source, id) order) and stats.json (documents, lines, words, characters and bytes per source and
split; no timings, so two runs give byte-identical output).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from nanofm.config import ConfigError
from nanofm.data.sources import bible, fortunes, libreoffice, manpages, normalize_space
from nanofm.data.sources.debian import fetch_packages
from nanofm.errors import DataError
from nanofm.text.wordpiece import DEFAULT_VOCAB_SIZE, train_wordpiece  # 8,000 entries (BETO used 31,002)
from nanofm.text_files import read_user_text

SOURCES = ("bible", "manpages", "libreoffice", "fortunes")
PACKAGES = {"bible": bible.MODULES["es"][0], "manpages": manpages.PACKAGE,
            "libreoffice": libreoffice.PACKAGES["es"], "fortunes": fortunes.PACKAGE}
SPLITS = ("train", "valid")


class Document(NamedTuple):
    source: str  # "bible", "manpages", "libreoffice", "fortunes" or "input"
    id: str  # unique within the source: "Gen.1", "man1/ls.1", "text/swriter/main0000.html", "refranes/12"
    text: str  # lines of normalised text, no empty line


def clean_lines(lines: Iterable[str], drop_english: bool = True) -> str:
    """Normalise each line's whitespace, drop the empty ones (and those that look English), join
    with newlines."""
    return "\n".join(t for t in map(normalize_space, lines) if t and not (drop_english and looks_english(t)))


_EN = frozenset("the and of to is are from with for this that you your be by it an which can when if use or in on as "
                "not all will have was at".split())
_ES = frozenset("el la los las de del que en y para con por una un se es al su lo como o pero más".split())


def looks_english(line: str) -> bool:
    """True for a line with more common English words than Spanish ones (at least 2): the untranslated
    paragraphs that translated documentation keeps."""
    words = re.findall(r"\w+", line.lower())
    en, es = sum(w in _EN for w in words), sum(w in _ES for w in words)
    return en >= 2 and en > es


def valid_share(doc_id: str) -> float:
    """A document's place in [0, 1) from the SHA-256 of its id; below valid_fraction means valid."""
    return int(hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:16], 16) / 2**64


def read_source(source: str, root: Path) -> list[Document]:
    """The documents of one Debian source, from its extracted (or installed) package root."""
    if source == "bible":
        verses = bible.read_module(root / "usr/share/sword", bible.MODULES["es"][1])
        chapters: dict[str, list[str]] = {}
        for (book, ch, _), text in verses.items():  # canonical order
            chapters.setdefault(f"{book}.{ch}", []).append(text)
        return [Document(source, c, clean_lines(v)) for c, v in chapters.items()]
    if source == "manpages":
        pages = manpages.read_manpages(root / manpages.MAN_DIRS["es"])
        return [Document(source, p, clean_lines(paras)) for p, paras in pages.items()]
    if source == "libreoffice":
        pages = libreoffice.read_help(root / "usr/share/libreoffice/help" / libreoffice.LANG_DIRS["es"])
        return [Document(source, p, clean_lines(t for _, t in units)) for p, units in pages.items()]
    if source == "fortunes":
        cats = fortunes.read_fortunes(root / fortunes.FORTUNE_DIRS["es"])
        return [Document(source, f"{c}/{i}", clean_lines([" ".join(e.split())])) for c, es in cats.items() for i, e in enumerate(es)]
    raise ConfigError(f"unknown source {source!r}; choose from {SOURCES}")


def read_inputs(paths: Sequence[str | Path], blocks: bool = False) -> list[Document]:
    """Documents from your UTF-8 text files (folders are searched recursively, hidden files skipped):
    one per file, or with `blocks` one per blank-line-separated block. A missing path, an empty file
    or invalid UTF-8 raises DataError naming the file (a leading UTF-8 BOM is dropped)."""
    files: list[tuple[Path, str]] = []  # (file, document id): ids never hold where the input lies, so the
    for p in map(Path, paths):          # held-out split is the same in any checkout
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and not any(s.startswith(".") for s in f.relative_to(p).parts))
            if not found:
                raise DataError(f"{p}: folder holds no files")
            files += [(f, f"{p.name}/{f.relative_to(p).as_posix()}") for f in found]
        elif p.is_file():
            files.append((p, p.name))
        else:
            raise DataError(f"{p}: no such file or folder")
    docs = []
    for f, doc_id in files:
        text = read_user_text(f)
        if not text.strip():
            raise DataError(f"{f}: empty file")
        if blocks:
            parts = [clean_lines(b.splitlines(), False) for b in text.replace("\r\n", "\n").split("\n\n")]
            docs += [Document("input", f"{doc_id}#{i}", b) for i, b in enumerate(filter(None, parts))]
        else:
            docs.append(Document("input", doc_id, clean_lines(text.splitlines(), False)))
    return docs


def split_and_dedup(
    docs: Iterable[Document], valid_fraction: float, dedup_paragraphs: bool = True
) -> tuple[dict[str, list[Document]], Counter[str]]:
    """{split: documents in (source, id) order}, with duplicate documents (and repeated lines) removed,
    valid first, and a count of what was dropped."""
    by_split: dict[str, list[Document]] = {s: [] for s in SPLITS}
    for d in sorted(docs, key=lambda d: (d.source, d.id)):
        by_split["valid" if valid_share(f"{d.source}:{d.id}") < valid_fraction else "train"].append(d)
    seen_docs: set[str] = set()
    seen_lines: set[str] = set()
    dropped: Counter[str] = Counter()
    out: dict[str, list[Document]] = {}
    for split in ("valid", "train"):
        kept = []
        for d in by_split[split]:
            if not d.text or d.text in seen_docs:
                dropped["duplicate or empty documents"] += 1
                continue
            seen_docs.add(d.text)
            text = d.text
            if dedup_paragraphs:
                lines = [line for line in text.split("\n") if line not in seen_lines]
                dropped["repeated lines"] += text.count("\n") + 1 - len(lines)
                seen_lines.update(lines)
                text = "\n".join(lines)
                if not text:
                    dropped["documents of repeated lines only"] += 1
                    continue
            kept.append(d._replace(text=text))
        out[split] = kept
    return {s: out[s] for s in SPLITS}, +dropped


def write_documents(path: str | Path, docs: Iterable[Document]) -> None:
    """One document per block of lines, blocks separated by one blank line, final newline."""
    Path(path).write_text("".join(d.text + "\n\n" for d in docs).removesuffix("\n"), encoding="utf-8", newline="\n")


def read_corpus(path: str | Path) -> list[str]:
    """The documents of a train.txt / valid.txt (or any file in that format), as texts whose lines
    are its paragraphs."""
    text = read_user_text(path)
    return [b.strip("\n") for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]


def _stats(docs: Sequence[Document]) -> dict[str, int]:
    return {"documents": len(docs), "lines": sum(d.text.count("\n") + 1 for d in docs),
            "words": sum(len(d.text.split()) for d in docs), "characters": sum(len(d.text) for d in docs),
            "bytes": sum(len(d.text.encode("utf-8")) for d in docs)}


def prepare_corpus(
    out_dir: str | Path,
    lang: str = "es",
    sources: Sequence[str] = SOURCES,
    inputs: Sequence[str | Path] = (),
    *,
    blocks: bool = False,
    valid_fraction: float = 0.03,
    dedup_paragraphs: bool = True,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Read the Debian `sources` (fetched into cache_dir, default ~/.cache/nanofm/debian) and the
    `inputs` files, split and deduplicate, write out_dir/{train,valid}.txt and stats.json, and print a
    size report. With vocab_size > 0 (default 8,000; 0: no tokenizer), also train a cased WordPiece
    tokenizer on train.txt only and save out_dir/tokenizer.json and vocab.txt. Returns the stats."""
    if lang != "es":
        raise ConfigError(f"only Spanish (--lang es) has Debian sources here, got {lang!r}; "
                         "use --sources none --input FILES for other languages")
    if set(sources) - set(SOURCES):
        raise ConfigError(f"unknown source(s) {sorted(set(sources) - set(SOURCES))}; choose from {SOURCES}")
    if not sources and not inputs:
        raise ConfigError("nothing to read: give Debian sources or --input files")
    if not 0 < valid_fraction < 0.5:
        raise ConfigError(f"--valid-fraction must be in (0, 0.5), got {valid_fraction}")
    start = time.perf_counter()
    docs = read_inputs(inputs, blocks) if inputs else []
    packages = fetch_packages([PACKAGES[s] for s in sources], cache_dir, log) if sources else {}
    for s in sources:
        t0 = time.perf_counter()
        found = read_source(s, packages[PACKAGES[s]][0])
        log(f"{s}: {len(found):,} documents ({time.perf_counter() - t0:.1f} s)")
        docs += found
    splits, dropped = split_and_dedup(docs, valid_fraction, dedup_paragraphs)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_documents(out / f"{name}.txt", splits[name])
    used = [s for s in (*SOURCES, "input") if any(d.source == s for d in docs)]
    stats = {
        "lang": lang,
        "packages": {name: version for name, (_, version) in sorted(packages.items())},
        "settings": {"valid_fraction": valid_fraction, "dedup_paragraphs": dedup_paragraphs, "blocks": blocks},
        "splits": {n: _stats(splits[n]) for n in SPLITS},
        "sources": {s: {n: _stats([d for d in splits[n] if d.source == s]) for n in SPLITS} for s in used},
        "dropped": dict(sorted(dropped.items())),
    }
    if vocab_size:
        t0 = time.perf_counter()
        tok = train_wordpiece([out / "train.txt"], vocab_size)
        tok.save(out)
        stats["tokenizer"] = {"kind": "wordpiece-cased", "vocab_size": tok.vocab_size, "trained_on": "train.txt"}
        log(f"tokenizer: WordPiece, {tok.vocab_size:,} entries, trained on train.txt in {time.perf_counter() - t0:.1f} s")
    (out / "stats.json").write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log(size_report(stats))
    log(f"wrote {out}/train.txt, valid.txt, stats.json{', tokenizer.json, vocab.txt' if vocab_size else ''} "
        f"in {time.perf_counter() - start:.1f} s")
    return stats


def size_report(stats: dict) -> str:
    """A table of documents, words and megabytes per source and split."""
    rows = [f"{'source':<12} {'documents':>10} {'words':>11} {'MB':>7}   {'valid docs':>10} {'valid words':>11}"]
    items = [*stats["sources"].items(), ("total", stats["splits"])]
    for name, by in items:
        t, v = by["train"], by["valid"]
        rows.append(f"{name:<12} {t['documents'] + v['documents']:>10,} {t['words'] + v['words']:>11,} "
                    f"{(t['bytes'] + v['bytes']) / 1e6:>7.2f}   {v['documents']:>10,} {v['words']:>11,}")
    if stats["dropped"]:
        rows.append("dropped: " + ", ".join(f"{k} {v:,}" for k, v in stats["dropped"].items()))
    return "\n".join(rows)
