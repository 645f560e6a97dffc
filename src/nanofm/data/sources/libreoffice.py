"""LibreOffice help pages (Debian libreoffice-help-*) as parallel text.

Every language's help is the same set of HTML pages (usr/share/libreoffice/help/LANG/text/...), and
each translatable paragraph or heading carries the same id in every language (id="par_id3146957",
id="hd_id3147291"), so paragraphs are aligned exactly by (page path, id). Inline platform and
application switches (`<span class="switchinline">` holding hidden MAC/WIN/WRITER/... variants) are
rendered the way the help shows them by default: the "default..." variant, else the first one.
"""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

from nanofm.data.sources import AlignedPair, normalize_space
from nanofm.text_files import read_user_text

ORIGIN = "libreoffice"
PACKAGES = {"es": "libreoffice-help-es", "en": "libreoffice-help-en-us", "fr": "libreoffice-help-fr"}
LANG_DIRS = {"es": "es", "en": "en-US", "fr": "fr"}
ALIGN_ID = re.compile(r"(par|hd)_id")  # paragraphs and headings; other ids (bookmarks, switches) are not text units
SKIP_CLASS = re.compile(r"code")  # code samples (code, codeintable, smathcode) are not translations
SWITCH_CLASSES = {"switch", "switchinline"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
BLOCK = {"p", "div", "li", "td", "th", "tr", "table", "pre", "h1", "h2", "h3", "h4", "h5", "h6", "br"}


class _Node:
    __slots__ = ("tag", "attrs", "children")

    def __init__(self, tag: str, attrs: dict[str, str | None]):
        self.tag, self.attrs, self.children = tag, attrs, []

    def text(self) -> str:
        parts = []
        if self.attrs.get("class") in SWITCH_CLASSES:
            variants = [c for c in self.children if isinstance(c, _Node) and "hidden" in c.attrs]
            default = [v for v in variants if (v.attrs.get("id") or "").startswith("default")]
            keep = (default or variants)[:1]
            children = [c for c in self.children if c not in variants or c in keep]
        else:
            children = self.children
        for child in children:
            parts.append(child if isinstance(child, str) else child.text())
        sep = " " if self.tag in BLOCK else ""
        return sep + "".join(parts) + sep


class _PageParser(HTMLParser):
    """Collects (id, text) for every element whose id is an alignment id, in document order."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.units: list[tuple[str, str]] = []
        self._open: list[_Node] = []  # the open elements inside the current unit; [0] is the unit

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if not self._open:
            if ALIGN_ID.match(attrs.get("id") or "") and tag not in VOID:
                self._open.append(_Node(tag, attrs))
            return
        node = _Node(tag, attrs)
        self._open[-1].children.append(node)
        if tag not in VOID:
            self._open.append(node)

    def handle_startendtag(self, tag, attrs):
        if self._open:
            self._open[-1].children.append(_Node(tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self._open) - 1, -1, -1):  # close up to the matching open element
            if self._open[i].tag == tag:
                if i == 0:
                    unit = self._open[0]
                    if not SKIP_CLASS.search(unit.attrs.get("class") or ""):
                        self.units.append((unit.attrs["id"], normalize_space(unit.text())))
                del self._open[i:]
                return

    def handle_data(self, data):
        if self._open:
            self._open[-1].children.append(data)


def page_units(html: str) -> list[tuple[str, str]]:
    """(id, plain text) of every paragraph and heading of one help page, in document order."""
    parser = _PageParser()
    parser.feed(html)
    parser.close()
    return parser.units


def read_help(help_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """{page path relative to help_dir (posix): units} for every page under help_dir/text."""
    pages = sorted((help_dir / "text").rglob("*.html"))
    if not pages:
        raise FileNotFoundError(f"no help pages under {help_dir / 'text'}")
    return {p.relative_to(help_dir).as_posix(): page_units(read_user_text(p)) for p in pages}


def align_pages(
    src_pages: dict[str, list[tuple[str, str]]], tgt_pages: dict[str, list[tuple[str, str]]]
) -> list[AlignedPair]:
    """Pairs of units with the same id on the same page. An id that occurs a different number of
    times in the two languages (pages that embed a section twice) is ambiguous and skipped;
    otherwise its k-th occurrences are paired."""
    pairs = []
    for page in sorted(src_pages.keys() & tgt_pages.keys()):
        src, tgt = _by_occurrence(src_pages[page]), _by_occurrence(tgt_pages[page])
        for key in src:  # document order of the source page
            if key in tgt:
                pairs.append(AlignedPair(ORIGIN, page, key, src[key], tgt[key]))
    return pairs


def _by_occurrence(units: list[tuple[str, str]]) -> dict[str, str]:
    counts = Counter(uid for uid, _ in units)
    seen: Counter[str] = Counter()
    out = {}
    for uid, text in units:
        out[f"{uid}#{seen[uid]}/{counts[uid]}"] = text  # the count makes ids with unequal counts differ
        seen[uid] += 1
    return out


def load_pairs(src_root: Path, tgt_root: Path, src_lang: str, tgt_lang: str) -> list[AlignedPair]:
    """Aligned pairs from two extracted (or installed) libreoffice-help-* packages."""
    help_root = Path("usr/share/libreoffice/help")
    src = read_help(src_root / help_root / LANG_DIRS[src_lang])
    tgt = read_help(tgt_root / help_root / LANG_DIRS[tgt_lang])
    return align_pages(src, tgt)
