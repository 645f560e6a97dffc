"""The user's text files (TSV, corpora, task files, configs): UTF-8, a leading byte-order mark dropped; anything
else is a DataError naming the file, the line and the byte. Light (no torch): the config loader reads with it."""

from __future__ import annotations

from pathlib import Path

from nanofm.errors import DataError


def decode_user_text(data: bytes, path: str | Path) -> str:
    """`data` (the bytes of `path`) as text, without a leading UTF-8 BOM."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "save the file as UTF-8") from None


def read_user_text(path: str | Path) -> str:
    return decode_user_text(Path(path).read_bytes(), path)


def split_lines(text: str) -> list[str]:
    r"""Lines split at "\n" (or "\r\n") only, so that they align with the file's own lines: form feeds,
    U+2028 and the like stay inside their line (str.splitlines splits there); a final newline adds no line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]
