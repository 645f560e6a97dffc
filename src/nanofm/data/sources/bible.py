"""Bibles in SWORD zText modules (Debian sword-text-*) as parallel text, aligned by verse reference.

Verses are paired by (book, chapter, verse) reference, never by position: the modules hold different
book sets (the WEB has the deuterocanon) and, although both index their verses in KJV-style slots,
the Reina-Valera 1909 keeps Spanish (Hebrew) numbering in a few chapters, leaving some slots empty
and shifting the text of the next ones (for instance its Jonah 2:1 is the WEB's Jonah 1:17). So
after pairing by reference, whole chapters whose pairing is suspect are dropped (see
`suspect_chapters`). Reading (pysword) is separate from alignment (plain dicts) so that the
alignment can be tested without a module.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path

from nanofm.data.sources import AlignedPair, normalize_space
from nanofm.errors import DataError

ORIGIN = "bible"
Ref = tuple[str, int, int]  # (OSIS book name, chapter, verse)
# language -> (Debian package, SWORD module name); no French Bible is packaged in Debian.
MODULES = {"es": ("sword-text-sparv", "spaRV1909eb"), "en": ("sword-text-web", "engWEB2015eb")}
SHIFTS = (-3, -2, -1, 1, 2, 3)  # verse offsets tried by the shift test
SHIFT_MARGIN = 0.8  # a chapter fits a shifted pairing better when its cost is below this fraction
SHIFT_MIN_VERSES = 8  # shorter chapters are too noisy for the whole-chapter shift test
LOCAL_WINDOW = 2  # the local shift test looks at verses v-2..v+2, for shifts inside a chapter
LOCAL_MARGIN = 0.5  # ... and needs a shifted pairing to halve the cost
LOCAL_MIN_COST = 0.4  # ... of a window that fits badly by reference (mean |log ratio| deviation)

_NOTE = re.compile(r"<note\b[^>]*>.*?</note>", re.S)
_TITLE = re.compile(r"<title\b([^>]*)>(.*?)</title>", re.S)
_TAG = re.compile(r"<[^>]*>")


def clean_osis(text: str) -> str:
    """OSIS markup -> plain text: footnotes and section headings dropped, canonical titles (psalm
    superscriptions, which the Reina-Valera prints inside verse 1) kept, other tags stripped."""
    text = _NOTE.sub(" ", text)
    text = _TITLE.sub(lambda m: f" {m.group(2)} " if 'canonical="true"' in m.group(1) else " ", text)
    return normalize_space(_TAG.sub("", text))


def read_module(sword_root: Path, module: str) -> dict[Ref, str]:
    """{(book, chapter, verse): plain text} of every verse slot of a module's versification, in
    canonical order ("" for empty slots). sword_root holds mods.d/ and modules/."""
    try:
        from pysword.modules import SwordModules  # only reading needs it; alignment does not
    except ImportError as e:
        raise ImportError("reading the SWORD Bibles needs pysword: pip install pysword "
                          "(or leave the Bible out: sources=('libreoffice',))") from e

    modules = SwordModules(str(sword_root))
    found = modules.parse_modules()
    if module not in found:
        raise FileNotFoundError(f"SWORD module {module!r} not in {sword_root}/mods.d (found: {sorted(found)})")
    bible = modules.get_bible_from_module(module)
    # pysword decompresses the whole book block again for every verse (43 s for this Bible); caching
    # the last blocks brings reading down to about 0.5 s. A private hook: without it, only slower.
    if hasattr(bible, "_decompressed_text"):
        bible._decompressed_text = functools.lru_cache(maxsize=4)(bible._decompressed_text)
    verses = {}
    for books in bible.get_structure().get_books().values():
        for book in books:
            refs = [(book.osis_name, c, v) for c, n in enumerate(book.chapter_lengths, 1) for v in range(1, n + 1)]
            texts = list(bible.get_iter(books=book.name, clean=False))
            if len(texts) != len(refs):
                raise DataError(f"{module}: {book.osis_name} has {len(texts)} verse slots, expected {len(refs)}")
            verses.update(zip(refs, map(clean_osis, texts)))
    return verses


def suspect_chapters(src: Mapping[Ref, str], tgt: Mapping[Ref, str]) -> dict[tuple[str, int], str]:
    """{(book, chapter): reason} for chapters, of books in both, whose pairing by reference is unsafe:
    - "empty": a verse is empty in one text only (merged verses, or a versification difference);
    - "shifted": pairing verse v with verse v+d matches the verse lengths clearly better than pairing
      by reference, over the chapter or a few verses: the mark of renumbered verses (Jonah 2 after
      an empty Jonah 1:17; 1 Kings 22:43-53, where only the end of the chapter is renumbered);
    - "carry-over": the previous chapter ends with such a verse, so its text may have moved into
      this chapter, and this chapter is too short for the shift test to clear it.
    """
    books = {r[0] for r in src} & {r[0] for r in tgt}
    chapters: dict[tuple[str, int], dict[int, tuple[str, str]]] = {}
    for ref in sorted(src.keys() | tgt.keys(), key=_canonical(src, tgt)):
        if ref[0] in books:
            chapters.setdefault(ref[:2], {})[ref[2]] = (src.get(ref, ""), tgt.get(ref, ""))
    mu = _median_log_ratio(chapters)
    ends_one_sided = {c for c, vs in chapters.items() if bool(vs[max(vs)][0]) != bool(vs[max(vs)][1])}
    bad: dict[tuple[str, int], str] = {}
    for (book, ch), verses in chapters.items():
        if any(bool(s) != bool(t) for s, t in verses.values()):
            bad[book, ch] = "empty"
        elif _is_shifted(verses, mu):
            bad[book, ch] = "shifted"
        elif (book, ch - 1) in ends_one_sided and _n_pairs(verses) < SHIFT_MIN_VERSES:
            bad[book, ch] = "carry-over"
    return bad


def align_verses(src: Mapping[Ref, str], tgt: Mapping[Ref, str]) -> tuple[list[AlignedPair], dict]:
    """Pairs of verses with the same reference, both non-empty, outside suspect chapters; in the
    source's canonical order. Also returns a report: the dropped chapters and how many pairs."""
    bad = suspect_chapters(src, tgt)
    pairs, dropped = [], 0
    for ref, s in src.items():
        t = tgt.get(ref, "")
        if not (s and t):
            continue
        if ref[:2] in bad:
            dropped += 1
            continue
        pairs.append(AlignedPair(ORIGIN, ref[0], f"{ref[0]}.{ref[1]}.{ref[2]}", s, t))
    report = {
        "excluded_chapters": {f"{b}.{c}": why for (b, c), why in sorted(bad.items(), key=_canonical_chapter(src))},
        "excluded_pairs": dropped,
    }
    return pairs, report


def load_pairs(src_root: Path, tgt_root: Path, src_lang: str, tgt_lang: str) -> tuple[list[AlignedPair], dict]:
    """Aligned verse pairs from two extracted (or installed) sword-text-* packages."""
    src = read_module(src_root / "usr/share/sword", MODULES[src_lang][1])
    tgt = read_module(tgt_root / "usr/share/sword", MODULES[tgt_lang][1])
    return align_verses(src, tgt)


def _n_pairs(verses: dict[int, tuple[str, str]]) -> int:
    return sum(1 for s, t in verses.values() if s and t)


def _is_shifted(verses: dict[int, tuple[str, str]], mu: float) -> bool:
    """True when, over the whole chapter or over a window of 2 * LOCAL_WINDOW + 1 verses, pairing
    verse v with verse v+d fits the lengths clearly better than pairing by reference."""
    if _n_pairs(verses) >= SHIFT_MIN_VERSES:
        base = _cost(verses, verses, 0, mu, SHIFT_MIN_VERSES // 2)
        if any(_cost(verses, verses, d, mu, SHIFT_MIN_VERSES // 2) < SHIFT_MARGIN * base for d in SHIFTS):
            return True
    for v in verses:
        window = range(v - LOCAL_WINDOW, v + LOCAL_WINDOW + 1)
        base = _cost(verses, window, 0, mu, LOCAL_WINDOW + 1)
        if base >= LOCAL_MIN_COST and base < math.inf:
            if min(_cost(verses, window, d, mu, LOCAL_WINDOW + 1) for d in (-1, 1)) < LOCAL_MARGIN * base:
                return True
    return False


def _cost(verses: dict[int, tuple[str, str]], numbers: Iterable[int], d: int, mu: float, min_pairs: int) -> float:
    """Mean |log(length ratio) - mu| over the pairs (source verse v, target verse v+d), v in numbers;
    inf when fewer than min_pairs such pairs have text on both sides."""
    costs = []
    for v in numbers:
        s, t = verses.get(v, ("", ""))[0], verses.get(v + d, ("", ""))[1]
        if s and t:
            costs.append(abs(math.log(len(t) / len(s)) - mu))
    return sum(costs) / len(costs) if len(costs) >= min_pairs else math.inf


def _median_log_ratio(chapters: dict[tuple[str, int], dict[int, tuple[str, str]]]) -> float:
    ratios = [math.log(len(t) / len(s)) for vs in chapters.values() for s, t in vs.values() if s and t]
    return statistics.median(ratios) if ratios else 0.0


def _canonical(src: Mapping[Ref, str], tgt: Mapping[Ref, str]):
    """Sort key for references: book in canonical order (source's, then target's), chapter, verse."""
    order = {}
    for ref in list(src) + list(tgt):
        order.setdefault(ref[0], len(order))
    return lambda ref: (order[ref[0]], ref[1], ref[2])


def _canonical_chapter(src: Mapping[Ref, str]):
    order = {}
    for ref in src:
        order.setdefault(ref[0], len(order))
    return lambda item: (order.get(item[0][0], len(order)), item[0][0], item[0][1])
