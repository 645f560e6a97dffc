"""The tokenizer files of a Hugging Face BERT folder, read into and written from nanofm's WordPieceTokenizer.

    tokenizer.json           the whole pipeline (Hugging Face `tokenizers`); read as it is when present
    vocab.txt                one token per line, ids in line order; alone, it means Google BERT's pipeline with
                             the settings of tokenizer_config.json
    tokenizer_config.json    do_lower_case (transformers' default: true), strip_accents, tokenize_chinese_chars,
                             model_max_length, the special tokens
    special_tokens_map.json  the special tokens: nanofm's WordPiece takes BERT's [PAD] [UNK] [CLS] [SEP] [MASK]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nanofm.errors import DataError
from nanofm.text.wordpiece import WordPieceTokenizer

FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")
ROLES = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object, or {} when the file is absent."""
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def load_hf_tokenizer(folder: str | Path) -> WordPieceTokenizer:
    """The tokenizer of a Hugging Face BERT folder (or of a nanofm run or data folder: its tokenizer.json)."""
    folder = Path(folder)
    settings = read_json(folder / "tokenizer_config.json")
    specials = {**settings, **read_json(folder / "special_tokens_map.json")}
    named = {role: (v.get("content") if isinstance(v, dict) else v) for role, v in specials.items() if role in ROLES}
    if odd := {role: t for role, t in named.items() if t != ROLES[role]}:
        raise DataError(f"{folder}: special tokens {odd}; nanofm's WordPiece tokenizer takes BERT's {ROLES}")
    if (folder / "tokenizer.json").is_file():
        tok = WordPieceTokenizer.load(folder / "tokenizer.json")
        if (kind := type(tok.hf.model).__name__) != "WordPiece":
            raise DataError(f"{folder / 'tokenizer.json'}: a {kind} tokenizer; nanofm's BERT reads WordPiece ones")
        return tok
    if (folder / "vocab.txt").is_file():
        lower = settings.get("do_lower_case", True)
        return WordPieceTokenizer.from_vocab(folder / "vocab.txt", lowercase=lower, strip_accents=settings.get("strip_accents"),
                                             nfc=False, chinese_chars=settings.get("tokenize_chinese_chars", True))
    raise FileNotFoundError(f"{folder}: no tokenizer.json or vocab.txt; a Hugging Face BERT folder holds its tokenizer "
                            "as tokenizer.json and/or vocab.txt, with tokenizer_config.json and special_tokens_map.json")


def load_tokenizer(path: str | Path) -> WordPieceTokenizer:
    """A tokenizer.json or vocab.txt file (nanofm's cased settings for vocab.txt), or a folder (load_hf_tokenizer)."""
    path = Path(path)
    return load_hf_tokenizer(path) if path.is_dir() else WordPieceTokenizer.load(path)


def tokenizer_files(path: str | Path) -> dict[str, Path]:
    """What to copy into a run folder so that load_tokenizer(run folder) gives the same tokenizer: {name: source}."""
    path = Path(path)
    if path.is_dir():
        return {name: path / name for name in FILES if (path / name).is_file()}
    return {"tokenizer.json": path} if path.suffix == ".json" else {path.name: path}


def save_hf_tokenizer(tok: WordPieceTokenizer, folder: str | Path, max_len: int) -> list[str]:
    """Write the four files into `folder` (tokenizer.json and vocab.txt by tok.save); returns their names."""
    folder = Path(folder)
    tok.save(folder)
    lower, strip = _normalizer_flags(json.loads(tok.hf.to_str()).get("normalizer"))
    write_json(folder / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer", "do_lower_case": lower, "strip_accents": strip, "tokenize_chinese_chars": True,
        "model_max_length": max_len, "clean_up_tokenization_spaces": False, **ROLES,
    })  # fmt: skip
    write_json(folder / "special_tokens_map.json", ROLES)
    return list(FILES)


def _normalizer_flags(node: Any) -> tuple[bool, bool | None]:
    """(lowercase, strip_accents) of a tokenizer.json normalizer (a Sequence is searched)."""
    if not node:
        return False, False
    if node["type"] == "Sequence":
        flags = [_normalizer_flags(n) for n in node["normalizers"]]
        return any(f[0] for f in flags), next((f[1] for f in flags if f[1] is not False), False)
    if node["type"] == "BertNormalizer":
        return node["lowercase"], node["strip_accents"]
    return node["type"] == "Lowercase", True if node["type"] == "StripAccents" else False
