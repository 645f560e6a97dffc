"""Tokenized shards: a corpus of any size tokenized once into memory-mapped token arrays, read back by block.

On disk, one folder per split (`nanofm data tokenize ... --out SHARDS` writes SHARDS/train and SHARDS/valid):
  manifest.json        format, dtype, shard size, totals, the tokenizer's SHA-256, each shard's tokens and SHA-256
  tokenizer.json       a copy of the tokenizer that made the shards
  shard-00000.tokens   token ids, little-endian uint16 (vocabulary <= 65,536) or uint32: `shard_tokens` of them,
                       the last shard fewer
  shard-00000.flags    one byte per token: WORD_START on the first token of a word, DOC_START on a document's first
The documents follow one another in one stream, each ended by [SEP]; shards cut the stream at a fixed number of
tokens, wherever that falls. Tokenizing streams its input (memory does not grow with the corpus), runs the
tokenizers library's batch API (all cores), and after each shard records where it stands in progress.json, so an
interrupted run resumes at its last whole shard and writes the same bytes as an uninterrupted one.

Reading (ShardBlocks): block i is [CLS] + tokens [i*C, (i+1)*C) of the stream + [SEP], C = max_len - 2, a pure
function of i: any process reads any block without an index, and its memory is the page cache's, not its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nanofm.errors import DataError
from nanofm.hashing import sha256_file
from nanofm.text.wordpiece import WordPieceTokenizer

FORMAT = "nanofm-shards/1"
WORD_START, DOC_START = 1, 2
BATCH_CHARS = 4_000_000  # characters of text encoded in one call (and held as encodings at once), at most
DEFAULT_SHARD_TOKENS = 1 << 24  # 16,777,216 tokens: 32 MB of uint16 ids a shard
TEXT_SUFFIXES = (".txt", ".text", "")  # documents separated by a blank line, one paragraph per line
JSON_SUFFIXES = (".jsonl", ".json")  # JSON Lines, one document per line (its `text_field`)
ARROW_SUFFIXES = (".parquet", ".arrow")  # Hugging Face `datasets` files (needs pyarrow)


# ---------------------------------------------------------------- reading documents, streaming


def input_files(inputs: Iterable[str | Path]) -> list[Path]:
    """Files and folders (searched recursively, in name order) -> the files to read, in order."""
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.rglob("*") if p.is_file() and p.suffix in (*TEXT_SUFFIXES, *JSON_SUFFIXES, *ARROW_SUFFIXES))
        elif item.is_file():
            files.append(item)
        else:
            raise DataError(f"{item}: no such file or folder")
    if not files:
        raise DataError(f"no input files in {', '.join(map(str, inputs))}")
    return files


def iter_documents(files: Sequence[Path], text_field: str = "text") -> Iterator[str]:
    """Every document of the files, one at a time: text files hold documents separated by blank lines (as
    train.txt), JSON Lines files one object per line, Parquet and Arrow files a column, `text_field` in both."""
    for path in files:
        if path.suffix in JSON_SUFFIXES:
            yield from _json_lines(path, text_field)
        elif path.suffix in ARROW_SUFFIXES:
            yield from _arrow(path, text_field)
        else:
            yield from _text(path)


def _text(path: Path) -> Iterator[str]:
    lines: list[str] = []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\n").removesuffix("\r")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8") from None
            line = line.removeprefix("\ufeff") if n == 1 else line
            if line:
                lines.append(line)
            elif lines:
                yield "\n".join(lines)
                lines = []
    if lines:
        yield "\n".join(lines)


def _json_lines(path: Path, field: str) -> Iterator[str]:
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                text = json.loads(line)[field]
            except (json.JSONDecodeError, TypeError, KeyError) as e:
                raise DataError(f"{path}:{n}: expected a JSON object with a string {field!r} ({type(e).__name__}: {e})") from None
            if not isinstance(text, str):
                raise DataError(f"{path}:{n}: {field!r} is {type(text).__name__}, not a string")
            if text.strip():
                yield text


def _arrow(path: Path, field: str) -> Iterator[str]:
    try:  # optional: Parquet and Arrow files only
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet and Arrow files needs pyarrow (pip install 'nanofm[datasets]')") from None
    if path.suffix == ".parquet":
        pf = pq.ParquetFile(path)
        if field not in pf.schema_arrow.names:
            raise DataError(f"{path}: no column {field!r} (columns: {', '.join(pf.schema_arrow.names)})")
        batches = pf.iter_batches(columns=[field], batch_size=1024)
    else:
        source = pa.memory_map(str(path))
        try:  # `datasets` writes the streaming format
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            reader = (reader.get_batch(i) for i in range(reader.num_record_batches))
        batches = reader
    for batch in batches:
        if field not in batch.schema.names:
            raise DataError(f"{path}: no column {field!r} (columns: {', '.join(batch.schema.names)})")
        for text in batch.column(field).to_pylist():
            if isinstance(text, str) and text.strip():
                yield text


# ---------------------------------------------------------------- writing shards


def _settings(files: Sequence[Path], tokenizer: Path, shard_tokens: int, text_field: str, tok: WordPieceTokenizer) -> dict:
    return {"format": FORMAT, "dtype": "uint16" if tok.vocab_size <= 1 << 16 else "uint32", "shard_tokens": shard_tokens,
            "tokenizer_sha256": sha256_file(tokenizer), "vocab_size": tok.vocab_size, "separator_id": tok.sep_id,
            "text_field": text_field, "inputs": [{"path": str(p), "bytes": p.stat().st_size} for p in files]}


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    _write_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())


def _batch_arrays(encodings: list, sep_id: int, dtype: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Documents' encodings (none empty) -> their tokens, each document followed by [SEP] (ids), their flags,
    and where each document starts in them (starts); vectorised over the batch."""
    lengths = np.array([len(e) for e in encodings]) + 1  # with the [SEP]
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    total = int(lengths.sum())
    ids = np.full(total, sep_id, dtype=dtype)
    words = np.full(total, np.nan)
    real = np.ones(total, dtype=bool)
    real[starts + lengths - 1] = False  # the [SEP]s
    ids[real] = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int64, count=total - len(encodings))
    words[real] = np.array(list(chain.from_iterable(e.word_ids for e in encodings)), dtype=float)  # None: NaN
    flags = np.zeros(total, dtype=np.uint8)
    new_word = np.r_[True, words[1:] != words[:-1]] & ~np.isnan(words)  # NaN != NaN: masked by the second term
    new_word[starts] = ~np.isnan(words[starts])
    flags[new_word] = WORD_START
    flags[starts] |= DOC_START
    return ids, flags, starts


class _Stream:
    """Tokens waiting for their shard, in parts (one a batch of documents), and where the next shard starts:
    (document, offset in its tokens). A part is (ids, flags, doc_starts: where each of its documents starts in
    it, docs: their indices, first_offset: the offset of the part's first token inside docs[0])."""

    def __init__(self):
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]] = []
        self.size = 0

    def add(self, ids: np.ndarray, flags: np.ndarray, doc_starts: np.ndarray, docs: np.ndarray, first_offset: int = 0) -> None:
        if len(ids):
            self.parts.append((ids, flags, doc_starts, docs, first_offset))
            self.size += len(ids)

    def take(self, n: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int] | None]:
        """The first n tokens (and flags), and where the rest starts (None: nothing left)."""
        ids, flags, left = [], [], n
        while left and self.parts:
            i, f, starts, docs, first = self.parts.pop(0)
            ids.append(i[:left]), flags.append(f[:left])
            if len(i) > left:
                k = int(np.searchsorted(starts, left, side="right")) - 1
                offset = left - int(starts[k]) + (first if k == 0 else 0)
                self.parts.insert(0, (i[left:], f[left:], np.r_[0, starts[k + 1 :] - left], docs[k:], offset))
            left -= min(left, len(i))
        self.size -= n - left
        rest = (int(self.parts[0][3][0]), self.parts[0][4]) if self.parts else None
        return np.concatenate(ids), np.concatenate(flags), rest


def tokenize_to_shards(inputs: Iterable[str | Path], tokenizer: str | Path, out: str | Path, *,
                       shard_tokens: int = DEFAULT_SHARD_TOKENS, text_field: str = "text", batch_docs: int = 4096,
                       log=print) -> dict:
    """Tokenize every document of `inputs` into shards under `out` (see the module's docstring); resume an
    interrupted run of the same settings. Returns the manifest."""
    if shard_tokens < 1:
        raise DataError(f"shard_tokens must be positive, got {shard_tokens}")
    out, tokenizer = Path(out), Path(tokenizer)
    files = input_files(inputs)
    tok = WordPieceTokenizer.load(tokenizer)
    settings = _settings(files, tokenizer, shard_tokens, text_field, tok)
    manifest_path, progress_path = out / "manifest.json", out / "progress.json"
    if manifest_path.exists() and not progress_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if {k: manifest.get(k) for k in settings} == settings:
            log(f"{out}: already tokenized ({manifest['tokens']:,} tokens in {len(manifest['shards'])} shards)")
            return manifest
        raise DataError(f"{out}: holds shards of other inputs or settings; choose another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    shards, start, documents = [], (0, 0), 0
    if progress_path.exists():
        progress = json.loads(progress_path.read_text())
        changed = [k for k in settings if progress["settings"].get(k) != settings[k]]
        if changed:
            raise DataError(f"{progress_path}: an interrupted run with other {', '.join(changed)}; remove {out} to start over")
        shards, start, documents = progress["shards"], tuple(progress["next"]), progress["documents"]
        log(f"{out}: resuming after shard {len(shards) - 1} (document {start[0]:,})")
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    dtype = settings["dtype"]
    stream = _Stream()

    def write_shard(ids: np.ndarray, flags: np.ndarray) -> dict:
        name = f"shard-{len(shards):05d}"
        data = ids.astype(np.dtype(dtype).newbyteorder("<")).tobytes()
        _write_atomic(out / f"{name}.tokens", data)
        _write_atomic(out / f"{name}.flags", flags.tobytes())
        return {"name": name, "tokens": len(ids), "documents": int((flags & DOC_START).astype(bool).sum()),
                "sha256": hashlib.sha256(data).hexdigest(), "flags_sha256": hashlib.sha256(flags.tobytes()).hexdigest()}

    def flush(next_doc: int | None) -> None:
        """Write every full shard (with next_doc None, the end: the rest too); next_doc: the first document
        not yet handed to the stream."""
        nonlocal documents
        final = next_doc is None
        while stream.size >= shard_tokens or (final and stream.size):
            ids, flags, rest = stream.take(min(shard_tokens, stream.size))
            shards.append(write_shard(ids, flags))
            documents += shards[-1]["documents"]
            if not final:
                _write_json(progress_path, {"settings": settings, "shards": shards, "documents": documents,
                                            "next": rest if rest is not None else (next_doc, 0)})
            log(f"{out}: shard {len(shards) - 1} written ({documents:,} documents so far)")

    def tokenize(batch: list[tuple[int, str]], encodings: list) -> None:
        kept = [(i, e) for (i, _), e in zip(batch, encodings) if len(e)]  # a document of no token: none
        if kept:
            ids, flags, starts = _batch_arrays([e for _, e in kept], tok.sep_id, dtype)
            docs = np.array([i for i, _ in kept])
            skip = start[1] if docs[0] == start[0] else 0  # the document a resumed run is in the middle of
            stream.add(ids[skip:], flags[skip:], np.r_[0, starts[1:] - skip], docs, skip)
        if batch:
            flush(next_doc=batch[-1][0] + 1)

    def batches() -> Iterator[list[tuple[int, str]]]:  # at most batch_docs documents or BATCH_CHARS characters
        batch, chars = [], 0
        for doc_index, text in enumerate(iter_documents(files, text_field)):
            if doc_index < start[0]:
                continue  # in a shard written before the interruption
            batch.append((doc_index, text))
            chars += len(text)
            if len(batch) == batch_docs or chars >= BATCH_CHARS:
                yield batch
                batch, chars = [], 0
        yield batch

    # the tokenizers library encodes a batch on all cores, without the GIL: the next batch is read and encoded
    # in a thread while this one is turned into arrays and written
    with ThreadPoolExecutor(1) as pool:
        pending = None
        for batch in batches():
            encoding = pool.submit(tok.hf.encode_batch, [text for _, text in batch], add_special_tokens=False)
            if pending is not None:
                tokenize(pending[0], pending[1].result())
            pending = (batch, encoding)
        tokenize(pending[0], pending[1].result())
    flush(next_doc=None)
    if not shards:
        raise DataError(f"no text in {', '.join(map(str, files))}")
    manifest = {**settings, "tokens": sum(s["tokens"] for s in shards), "documents": documents, "shards": shards}
    _write_json(manifest_path, manifest)
    progress_path.unlink(missing_ok=True)
    return manifest


# ---------------------------------------------------------------- reading blocks


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        unfinished = " (an unfinished run: rerun `nanofm data tokenize` to finish it)" if (Path(folder) / "progress.json").exists() else ""
        raise DataError(f"{path}: no shard manifest{unfinished}; write shards with `nanofm data tokenize`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise DataError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    return manifest


class ShardBlocks(Sequence):
    """The blocks of a shard folder: block i {"tokens": (L,), "word_ids": (L,)} is [CLS] + stream tokens
    [i*C, (i+1)*C) + [SEP], C = max_len - 2 (the last block shorter; a [SEP] that opens a block dropped). Word ids
    count the block's words from 0 (a word cut at the block's start counts as one), -1 on [CLS] and [SEP].

    Every shard is checked against the manifest when opened (its size; its SHA-256 with verify=True), so a
    changed or missing shard is an error that names it, not silently different data."""

    def __init__(self, folder: str | Path, max_len: int, cls_id: int, sep_id: int, verify: bool = True,
                 tokenizer_sha256: str | None = None):
        self.folder, self.manifest = Path(folder), read_manifest(folder)
        if tokenizer_sha256 and tokenizer_sha256 != self.manifest["tokenizer_sha256"]:
            raise DataError(f"{self.folder}: its shards were made with another tokenizer than the run's "
                            f"(SHA-256 {self.manifest['tokenizer_sha256'][:12]}..., the run's {tokenizer_sha256[:12]}...)")
        self.dtype = np.dtype(self.manifest["dtype"]).newbyteorder("<")
        for shard in self.manifest["shards"]:
            for suffix, size, key in ((".tokens", self.dtype.itemsize, "sha256"), (".flags", 1, "flags_sha256")):
                path = self.folder / (shard["name"] + suffix)
                if not path.is_file():
                    raise DataError(f"{path}: missing (listed in {self.folder / 'manifest.json'})")
                if path.stat().st_size != shard["tokens"] * size:
                    raise DataError(f"{path}: {path.stat().st_size:,} bytes, the manifest says {shard['tokens'] * size:,}")
                if verify and sha256_file(path) != shard[key]:
                    raise DataError(f"{path}: changed since it was written (SHA-256 differs from the manifest)")
        self.offsets = np.cumsum([0] + [s["tokens"] for s in self.manifest["shards"]])  # (shards + 1,)
        self.n_tokens = int(self.offsets[-1])
        self.cap, self.cls_id, self.sep_id = max_len - 2, cls_id, sep_id
        if self.cap < 1:
            raise DataError(f"max_len must be at least 3, got {max_len}")
        self._maps: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return -(-self.n_tokens // self.cap)

    def _shard(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in self._maps:
            name = self.folder / self.manifest["shards"][k]["name"]
            self._maps[k] = (np.memmap(f"{name}.tokens", dtype=self.dtype, mode="r"),
                             np.memmap(f"{name}.flags", dtype=np.uint8, mode="r"))
        return self._maps[k]

    def span(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Stream tokens [start, stop) and their flags, across shard boundaries."""
        ids, flags = [], []
        k = int(np.searchsorted(self.offsets, start, side="right")) - 1
        while start < stop:
            t, f = self._shard(k)
            lo, hi = start - self.offsets[k], min(stop, self.offsets[k + 1]) - self.offsets[k]
            ids.append(t[lo:hi]), flags.append(f[lo:hi])
            start, k = self.offsets[k] + hi, k + 1
        return np.concatenate(ids).astype(np.int64), np.concatenate(flags)

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < len(self):
            raise IndexError(f"block {i} of {len(self)}")
        ids, flags = self.span(i * self.cap, min((i + 1) * self.cap, self.n_tokens))
        if ids[0] == self.sep_id and len(ids) > 1:  # a document ended just before the block
            ids, flags = ids[1:], flags[1:]
        special = ids == self.sep_id
        starts = (flags & WORD_START).astype(bool)
        starts[0] = not special[0]  # a word cut by the block's start begins the block's first word
        words = np.where(special, -1, np.cumsum(starts) - 1)
        return {"tokens": torch.from_numpy(np.concatenate([[self.cls_id], ids, [self.sep_id]])),
                "word_ids": torch.from_numpy(np.concatenate([[-1], words, [-1]]))}

    def token_counts(self, size: int) -> np.ndarray:
        """(size,) how often each token id occurs in the stream, one shard at a time."""
        counts = np.zeros(size, dtype=np.int64)
        for k in range(len(self.manifest["shards"])):
            counts += np.bincount(self._shard(k)[0], minlength=size)[:size]
        return counts
