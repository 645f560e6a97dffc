"""Sentence pairs for machine translation from real data in Debian packages.

    prepare_translation("es-en", "data/translation-es-en")   # train.tsv, valid.tsv, test.tsv, meta.json

Sources (see nanofm.data.sources): LibreOffice help paragraphs aligned by their ids, and the Bible
(Reina-Valera 1909 / World English Bible) aligned by verse reference. Pairs are cleaned, filtered by
length, de-duplicated, and split by whole help page / Bible book, so no page or book is in two splits,
and no source sentence of valid or test is in train (nor one of test in valid). Everything is sorted
or hashed, never random: two runs give byte-identical files.

The TSV files are UTF-8, one "source<TAB>target" pair per line, no header.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

from nanofm.config import ConfigError
from nanofm.data.sources import AlignedPair, bible, libreoffice
from nanofm.data.sources.debian import fetch_packages
from nanofm.errors import DataError
from nanofm.text_files import read_user_text, split_lines

SPLITS = ("train", "valid", "test")
PAIRS = {"es-en": ("es", "en"), "fr-en": ("fr", "en")}
SOURCES = ("libreoffice", "bible")


def prepare_translation(
    pair: str,
    out_dir: str | Path,
    cache_dir: str | Path | None = None,
    *,
    min_words: int = 1,
    max_words: int = 60,
    max_ratio: float = 3.0,
    valid_fraction: float = 0.02,
    test_fraction: float = 0.04,
    sources: tuple[str, ...] = SOURCES,
    log: Callable[[str], None] = print,
) -> dict:
    """Fetch (or reuse) the packages, align, clean and split; write out_dir/{train,valid,test}.tsv and
    meta.json, and return the meta dict. `pair` is "es-en" or "fr-en" (source-target); fr-en is
    LibreOffice only, since Debian packages no French Bible. cache_dir defaults to
    ~/.cache/nanofm/debian."""
    if pair not in PAIRS:
        raise ConfigError(f"unknown pair {pair!r}; choose from {sorted(PAIRS)}")
    unknown = set(sources) - set(SOURCES)
    if unknown or not sources:
        raise ConfigError(f"sources must be a non-empty subset of {SOURCES}, got {sources}")
    if not 1 <= min_words <= max_words or max_ratio < 1:
        raise ConfigError(f"need 1 <= min_words <= max_words and max_ratio >= 1, "
                         f"got {min_words}, {max_words}, {max_ratio}")
    if valid_fraction < 0 or test_fraction < 0 or valid_fraction + test_fraction >= 1:
        raise ConfigError(f"bad split fractions: valid {valid_fraction}, test {test_fraction}")
    src_lang, tgt_lang = PAIRS[pair]
    start = time.perf_counter()
    used = [s for s in SOURCES if s in sources and _has_source(s, src_lang, tgt_lang, log)]
    if not used:
        raise ConfigError(f"none of the sources {sources} covers {pair}")
    packages = fetch_packages([p for s in used for p in _packages(s, src_lang, tgt_lang)], cache_dir, log)

    aligned: list[AlignedPair] = []
    reports = {}
    for s in used:
        (src_pkg, tgt_pkg), t0 = _packages(s, src_lang, tgt_lang), time.perf_counter()
        args = (packages[src_pkg][0], packages[tgt_pkg][0], src_lang, tgt_lang)
        if s == "libreoffice":
            found = libreoffice.load_pairs(*args)
        else:
            found, reports["bible"] = bible.load_pairs(*args)
            log(f"bible: {len(reports['bible']['excluded_chapters'])} chapters with unsafe verse pairing "
                f"excluded ({reports['bible']['excluded_pairs']} pairs)")
        log(f"{s}: {len(found):,} aligned pairs ({time.perf_counter() - t0:.1f} s)")
        aligned += found

    kept, dropped = filter_pairs(aligned, min_words, max_words, max_ratio)
    splits = {name: [] for name in SPLITS}
    held_out: dict[str, list[str]] = {"valid": [], "test": []}
    for s in used:
        mine = [p for p in kept if p.origin == s]
        assignment = assign_groups(Counter(p.group for p in mine), valid_fraction, test_fraction)
        for p in mine:
            splits[assignment[p.group]].append(p)
        for name in held_out:
            held_out[name] += sorted(f"{s}:{g}" for g, split in assignment.items() if split == name)
    splits, removed = dedup_and_unleak(splits)
    dropped.update(removed)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_tsv(out / f"{name}.tsv", [(p.src, p.tgt) for p in splits[name]])
    counts = {name: {"total": len(splits[name]), **{s: sum(p.origin == s for p in splits[name]) for s in used}}
              for name in SPLITS}
    meta = {
        "pair": pair,
        "sources": used,
        "packages": {name: version for name, (_, version) in sorted(packages.items())},
        "settings": {"min_words": min_words, "max_words": max_words, "max_ratio": max_ratio,
                     "valid_fraction": valid_fraction, "test_fraction": test_fraction},
        "splits": {name: counts[name]["total"] for name in SPLITS},
        "counts": counts,
        "aligned": {s: sum(p.origin == s for p in aligned) for s in used},
        "dropped": dict(sorted(dropped.items())),
        "held_out": held_out,
        **({"bible_alignment": reports["bible"]} if "bible" in reports else {}),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log("dropped: " + ", ".join(f"{k} {v:,}" for k, v in meta["dropped"].items()))
    for name in SPLITS:
        log(f"{name}: {counts[name]['total']:,} pairs (" + ", ".join(f"{s} {counts[name][s]:,}" for s in used) + ")")
    log(f"wrote {out}/{{train,valid,test}}.tsv and meta.json in {time.perf_counter() - start:.1f} s")
    return meta


def filter_pairs(
    pairs: Iterable[AlignedPair], min_words: int, max_words: int, max_ratio: float
) -> tuple[list[AlignedPair], Counter[str]]:
    """Drop empty pairs, untranslated ones (source == target), and ones whose sides are outside
    min_words..max_words words or whose word counts differ by more than max_ratio times."""
    kept, dropped = [], Counter()
    for p in pairs:
        ns, nt = len(p.src.split()), len(p.tgt.split())
        if not (ns and nt):
            dropped["empty"] += 1
        elif p.src == p.tgt:
            dropped["untranslated"] += 1
        elif not (min_words <= ns <= max_words and min_words <= nt <= max_words):
            dropped["length"] += 1
        elif max(ns, nt) > max_ratio * min(ns, nt):
            dropped["ratio"] += 1
        else:
            kept.append(p)
    return kept, dropped


def assign_groups(sizes: dict[str, int], valid_fraction: float, test_fraction: float) -> dict[str, str]:
    """{group: split}: groups (pages, books) taken in the order of a hash of their name, each put in
    test, else valid, when that brings the split's pair count closer to its target, else in train."""
    total = sum(sizes.values())
    target = {"test": test_fraction * total, "valid": valid_fraction * total}
    filled = {"test": 0, "valid": 0}
    out = {}
    for group in sorted(sizes, key=lambda g: hashlib.sha256(g.encode()).hexdigest()):
        out[group] = "train"
        for split in ("test", "valid"):
            if abs(filled[split] + sizes[group] - target[split]) < abs(filled[split] - target[split]):
                out[group], filled[split] = split, filled[split] + sizes[group]
                break
    return out


def dedup_and_unleak(splits: dict[str, list[AlignedPair]]) -> tuple[dict[str, list[AlignedPair]], Counter[str]]:
    """One pair per source sentence in each split (its most frequent target, ties to the smallest),
    then remove from valid the sources of test, and from train those of valid and test."""
    out, dropped = {}, Counter()
    for name, pairs in splits.items():
        targets: dict[str, Counter[str]] = defaultdict(Counter)
        for p in pairs:
            targets[p.src][p.tgt] += 1
        best = {s: min(c, key=lambda t: (-c[t], t)) for s, c in targets.items()}
        seen, kept = set(), []
        for p in pairs:
            if p.src not in seen and p.tgt == best[p.src]:
                seen.add(p.src)
                kept.append(p)
        dropped["duplicate"] += len(pairs) - len(kept)
        out[name] = kept
    held = set()
    for name in ("test", "valid", "train"):
        before = len(out[name])
        out[name] = [p for p in out[name] if p.src not in held]
        dropped["held-out source in " + name] += before - len(out[name])
        held |= {p.src for p in out[name]}
    return out, +dropped


def write_tsv(path: str | Path, pairs: Iterable[tuple[str, str]]) -> None:
    """Write "source<TAB>target" lines (UTF-8, "\\n" line ends). A field that is empty or holds a tab
    or a line break raises ValueError."""
    lines = []
    for i, (src, tgt) in enumerate(pairs, 1):
        for field in (src, tgt):
            if not field or "\t" in field or "\n" in field or "\r" in field:
                raise ValueError(f"pair {i}: field {field!r} is empty or holds a tab or line break")
        lines.append(f"{src}\t{tgt}\n")
    Path(path).write_text("".join(lines), encoding="utf-8", newline="\n")


def read_tsv(path: str | Path) -> list[tuple[str, str]]:
    """Read write_tsv's format (a leading UTF-8 BOM is dropped). A malformed line (not UTF-8, not exactly
    two tab-separated fields, an empty field) raises DataError("{path}:{line}: ...")."""
    pairs = []
    for n, line in enumerate(split_lines(read_user_text(path)), 1):
        fields = line.split("\t")
        if len(fields) != 2:
            raise DataError(f"{path}:{n}: expected 2 tab-separated fields, got {len(fields)}")
        if not (fields[0].strip() and fields[1].strip()):
            raise DataError(f"{path}:{n}: empty {'source' if not fields[0].strip() else 'target'} field")
        pairs.append((fields[0], fields[1]))
    return pairs


def packages_for(pair: str, sources: tuple[str, ...] = SOURCES) -> list[str]:
    """The Debian packages preparing `pair` from `sources` reads."""
    src_lang, tgt_lang = PAIRS[pair]
    return [p for s in sources if _has_source(s, src_lang, tgt_lang, lambda m: None) for p in _packages(s, src_lang, tgt_lang)]


def _packages(source: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    table = libreoffice.PACKAGES if source == "libreoffice" else {k: v[0] for k, v in bible.MODULES.items()}
    return table[src_lang], table[tgt_lang]


def _has_source(source: str, src_lang: str, tgt_lang: str, log: Callable[[str], None]) -> bool:
    table = libreoffice.PACKAGES if source == "libreoffice" else bible.MODULES
    if src_lang in table and tgt_lang in table:
        return True
    log(f"{source}: no Debian package for {src_lang if src_lang not in table else tgt_lang}, skipped")
    return False
