"""Man pages (Debian manpages-es) as plain text: roff markup stripped, one paragraph per line.

`strip_roff` is a small roff-to-text converter for the man (and the little mdoc) markup these pages
use: comments, macro definitions (.de ... ..) and conditionals (.if/.ie/.el) dropped; font and size
escapes (\\fB \\fI \\fR \\f(CW \\s-1) removed; special characters (\\- \\(em \\[u00E1] \\*(lq ...) turned into
Unicode; font macros (.B .I .BR ...) reduced to their text; tables (.TS ... .TE) reduced to their
cells; filled text joined into paragraphs, no-fill blocks (.nf, .EX) kept line by line.
"""

from __future__ import annotations

import gzip
import re
import shlex
from pathlib import Path

from nanofm.data.sources import normalize_space
from nanofm.text_files import decode_user_text

PACKAGE = "manpages-es"
MAN_DIRS = {"es": "usr/share/man/es"}

# \(xx and \[xx] names -> text; unknown names are dropped
CHARS = {
    "em": "—", "en": "–", "hy": "-", "bu": "•", "aq": "'", "dq": '"', "lq": "“", "rq": "”", "oq": "‘",
    "cq": "’", "Fo": "«", "Fc": "»", "fo": "‹", "fc": "›", "co": "©", "rg": "®", "tm": "™", "de": "°",
    "mu": "×", "di": "÷", "+-": "±", "<=": "≤", ">=": "≥", "!=": "≠", "->": "→", "<-": "←", "ti": "~",
    "ha": "^", "ga": "`", "aa": "´", "rs": "\\", "sl": "/", "ba": "|", "or": "|", "at": "@", "sh": "#",
    "Do": "$", "ct": "¢", "Po": "£", "Eu": "€", "eu": "€", "Ye": "¥", "ss": "ß", "r!": "¡", "r?": "¿",
    "ps": "¶", "sc": "§", "lB": "[", "rB": "]", "lC": "{", "rC": "}", "la": "⟨", "ra": "⟩", "ua": "↑",
    "da": "↓", "ci": "○", "sq": "□", "pl": "+", "mi": "−", "eq": "=", "**": "*", "ul": "_", "ru": "_",
    "~n": "ñ", "~N": "Ñ", "'a": "á", "'e": "é", "'i": "í", "'o": "ó", "'u": "ú", "'A": "Á", "'E": "É",
    "'I": "Í", "'O": "Ó", "'U": "Ú", ":u": "ü", ":U": "Ü", ":a": "ä", ":o": "ö", ",c": "ç", ",C": "Ç",
}
STRINGS = {"lq": "“", "rq": "”", "R": "®", "Tm": "™", "(C": "©", "C`": "“", "C'": "”", "Aq": "'"}
FONT_MACROS = {"B", "I", "SM", "SB", "BI", "IB", "BR", "RB", "IR", "RI"}  # text in a font
ALTERNATING = {"BI", "IB", "BR", "RB", "IR", "RI"}  # arguments joined without spaces
HEADINGS = {"SH", "SS", "Sh", "Ss"}
BREAKS = {"PP", "LP", "P", "Pp", "TP", "TQ", "IP", "HP", "br", "sp", "RS", "RE", "in", "ti", "ce", "bp", "Sp"}
NOFILL = {"nf": True, "EX": True, "Vb": True, "fi": False, "EE": False, "Ve": False}
MDOC_TEXT = {"Nm", "Nd", "Ar", "Fl", "Em", "Pa", "Xr", "Sx", "Lk", "Mt"}  # mdoc macros whose arguments are text

_ESCAPE = re.compile(
    r"\\(?:"
    r"f(?:\[[^\]]*\]|\(..|.)"  # font
    r"|s(?:[+-]?\d|\(\d\d|\[[^\]]*\])"  # size
    r"|[nk*g](?:\[[^\]]*\]|\(..|.)"  # register / string / format (strings handled before)
    r"|[hvwlLxDbor]'[^']*'"  # motions, widths, drawing, overstrike
    r"|N'(\d+)'"  # character by number
    r"|\[u([0-9A-Fa-f]{4,6})\]"  # Unicode character
    r"|\((..)|\[([^\]]*)\]"  # named character
    r"|([-e\\'`.\"#~ 0|^&:%c/,)!{}acdprtuz])"  # one-character escapes
    r")"
)
_SIMPLE = {"-": "-", "e": "\\", "\\": "\\", "'": "´", "`": "`", ".": ".", "~": " ", " ": " ", "0": " "}


def _escape(m: re.Match) -> str:
    number, uni, short, long, single = m.groups()
    if number:
        return chr(int(number))
    if uni:
        return chr(int(uni, 16))
    name = short or long
    if name is not None:
        return CHARS.get(name, "")
    return _SIMPLE.get(single or "", "")


def unescape(text: str) -> str:
    """Inline roff escapes -> plain text (fonts and sizes removed, characters and strings resolved)."""
    text = re.sub(r"\\\*(?:\((..)|\[([^\]]*)\]|(.))", lambda m: STRINGS.get(m.group(1) or m.group(2) or m.group(3), ""), text)
    return _ESCAPE.sub(_escape, text)


def _args(rest: str) -> list[str]:
    """Macro arguments, with roff's double quotes ("" inside quotes is a quote)."""
    try:
        return shlex.split(rest.replace('""', "\x00"), posix=True)
    except ValueError:  # an unbalanced quote
        return rest.split()


def strip_roff(source: str) -> list[str]:
    """A man page's roff source -> its paragraphs (headings and table rows included), each one line
    of whitespace-normalised plain text."""
    paragraphs: list[str] = []
    current: list[str] = []
    nofill = False
    skip_definition = False  # inside .de/.am/.ig ... ..
    table: str | None = None  # None outside a table; "format" until the format line ends with "."; then "data"
    tab = "\t"
    tag_line = False
    rows: list[str] = []  # the data lines of the current table
    lines = source.replace("\r\n", "\n").split("\n")

    def flush() -> None:
        text = normalize_space(unescape(" ".join(current)).replace("\x00", '"'))
        if text:
            paragraphs.append(text)
        current.clear()

    for line in lines:
        line = re.sub(r'\\".*$', "", line)  # comment to end of line
        if skip_definition:
            skip_definition = not re.match(r"[.']\s*\.", line)  # ".." (or ". .") ends it
            continue
        if table == "format":
            opts = line.strip()
            if opts.endswith(";"):
                m = re.search(r"tab\s*\((.)\)", opts)
                tab = m.group(1) if m else "\t"
            elif opts.endswith("."):
                table = "data"
            continue
        if re.match(r"[.']\s*(\\#.*)?$", line):  # an empty request, or a \# comment
            continue
        m = re.match(r"[.']\s*(\S+)\s*(.*)$", line)
        if table == "data":
            if m and m.group(1) == "TE":
                for row in _table_rows(rows, tab):
                    current.append(row)
                    flush()
                table, rows = None, []
            else:
                rows.append(line)
            continue
        if not m:
            if not line.strip():  # a blank line is a paragraph break
                flush()
                continue
            current.append(line)
            if nofill or tag_line:
                flush()
                tag_line = False
            continue
        name, rest = m.group(1), m.group(2)
        if name in ("de", "de1", "ig", "am"):
            skip_definition = True
        elif name == "TS":
            flush()
            table, tab = "format", "\t"
        elif name in HEADINGS:
            flush()
            current.append(" ".join(_args(rest)))
            flush()
        elif name in FONT_MACROS or name in MDOC_TEXT:
            args = _args(rest)
            current.append(("" if name in ALTERNATING else " ").join(args))
            if nofill or tag_line:
                flush()
                tag_line = False
        elif name in ("UR", "MT"):
            current.append(" ".join(_args(rest)))  # the link; its text follows until .UE/.ME
        elif name in BREAKS:
            flush()
            tag_line = name in ("TP", "TQ")  # the next line is a tag: its own paragraph
            if name == "IP":  # ".IP tag indent": keep a word-like tag, drop bullets
                tag = unescape(" ".join(_args(rest)[:1]))
                if any(ch.isalnum() for ch in tag):
                    current.append(tag)
        elif name in NOFILL:
            flush()
            nofill = NOFILL[name]
        # every other request (.TH, .if, .ie, .el, .ds, .nr, .PD, .IX, .ad, ...) is formatting: dropped
    flush()
    return paragraphs


def _table_rows(lines: list[str], tab: str) -> list[str]:
    """A table's data lines -> one text line per row: cells joined by spaces, text blocks (T{ ... T})
    unfolded, rules (_ =) and requests inside blocks dropped."""
    out, row, block = [], "", None
    for line in lines:
        if block is not None:
            if not line.startswith("T}"):
                if not re.match(r"[.']", line):
                    block.append(line)
                continue
            row, block, line = row + " " + " ".join(block) + " ", None, line[2:]
        elif line.strip() in ("_", "=", "") or re.match(r"[.']", line):
            continue
        if line.endswith("T{"):
            row, block = row + line[:-2].replace(tab, " "), []
            continue
        out.append(row + line.replace(tab, " "))
        row = ""
    return out


def read_page(path: Path) -> str:
    """A man page file (gzipped or not) as text; an error naming the file if it is not UTF-8."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return decode_user_text(data, path)


def read_manpages(man_dir: Path) -> dict[str, list[str]]:
    """{"man1/ls.1": paragraphs} for every man page under man_dir/man*/ (links and .so redirections,
    which only point at another page, are skipped)."""
    pages = {}
    for path in sorted(man_dir.glob("man*/*")):
        if path.is_symlink() or not path.is_file():
            continue
        source = read_page(path)
        if re.match(r"\s*\.so\s", source) and source.count("\n") <= 2:
            continue
        pages[path.relative_to(man_dir).as_posix().removesuffix(".gz")] = strip_roff(source)
    if not pages:
        raise FileNotFoundError(f"no man pages under {man_dir}/man*/")
    return pages
