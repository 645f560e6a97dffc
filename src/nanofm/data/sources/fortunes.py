"""Fortune cookie files (Debian fortunes-es): entries separated by a line holding only "%".

Each file under usr/share/games/fortunes/es/ is one category (amistad, refranes, ...); the index
files (*.dat), the *.u8 links, backups (varios.fortunes-pre) and the offensive ones (the off/ folder)
are not read.
"""

from __future__ import annotations

from pathlib import Path

from nanofm.text_files import read_user_text

PACKAGE = "fortunes-es"
FORTUNE_DIRS = {"es": "usr/share/games/fortunes/es"}


def parse_fortunes(text: str) -> list[str]:
    """The entries of one fortune file, each with its lines kept (trailing spaces and blank edge
    lines removed); empty entries are dropped."""
    entries, lines = [], []
    for line in text.replace("\r\n", "\n").split("\n") + ["%"]:
        if line.strip() == "%":
            entry = "\n".join(lines).strip("\n")
            if entry.strip():
                entries.append(entry)
            lines = []
        else:
            lines.append(line.rstrip())
    return entries


def split_attribution(entry: str) -> tuple[str, str]:
    """(body, attribution): the trailing lines that are indented or start with "--" (the author,
    "\t\t-- Bill Gates."), when some unindented line comes before them."""
    lines = entry.split("\n")
    cut = len(lines)
    while cut > 1 and (lines[cut - 1][:1].isspace() or lines[cut - 1].lstrip().startswith("--")):
        cut -= 1
    if lines[cut - 1][:1].isspace():  # the whole entry is indented: no attribution to tell apart
        return entry, ""
    return "\n".join(lines[:cut]), "\n".join(lines[cut:])


def category(path: Path) -> str:
    """A fortune file's category: its name without the .fortunes suffix."""
    return path.name.removesuffix(".fortunes")


def read_fortunes(fortune_dir: Path) -> dict[str, list[str]]:
    """{category: entries} for every fortune file directly under fortune_dir, in name order. A file
    that is not UTF-8 raises DataError naming it."""
    out = {}
    for path in sorted(fortune_dir.iterdir()):
        if path.is_symlink() or not path.is_file() or path.suffix not in ("", ".fortunes"):  # *.dat, *.u8, backups
            continue
        out[category(path)] = parse_fortunes(read_user_text(path))
    if not out:
        raise FileNotFoundError(f"no fortune files in {fortune_dir}")
    return out
