"""Real parallel text that ships in Debian packages, aligned into sentence pairs.

Each source yields AlignedPair records; `group` is the unit held out as a whole (a help page, a Bible
book) so that no page or book contributes to two splits.
"""

from __future__ import annotations

from typing import NamedTuple


class AlignedPair(NamedTuple):
    origin: str  # which source: "libreoffice" or "bible"
    group: str  # held-out unit: a help page path or a Bible book
    key: str  # alignment key: a paragraph id or a verse reference
    src: str  # source-language text, plain and whitespace-normalised
    tgt: str  # target-language text


_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u200e\u200f\ufeff"))  # soft hyphen, zero-width, marks


def normalize_space(text: str) -> str:
    """Drop invisible format characters, collapse every run of (Unicode) whitespace to one space,
    strip the ends."""
    return " ".join(text.translate(_INVISIBLE).split())
