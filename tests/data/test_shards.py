"""Tokenized shards (`nanofm data tokenize`, data.shards): deterministic, resumable, checked, and read as blocks
that train exactly as the same blocks held in memory."""

import json
import random

import numpy as np
import pytest
import torch

from nanofm.data.corpus import read_corpus
from nanofm.data.shards import DOC_START, WORD_START, ShardBlocks, iter_documents, tokenize_to_shards
from nanofm.errors import DataError
from nanofm.text.wordpiece import WordPieceTokenizer, train_wordpiece

WORDS = ("la casa del perro come pan y agua en el jardín grande mientras los niños juegan con una pelota roja "
         "sobre la hierba verde cuando llueve mucho nadie sale").split()


def _corpus(tmp_path, n_docs=60, seed=0):
    """A train.txt of n_docs documents (blank-line separated, a few paragraphs each) and its tokenizer."""
    rng = random.Random(seed)
    docs = ["\n".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 25))) + "."
                      for _ in range(rng.randint(1, 3))) for _ in range(n_docs)]
    path = tmp_path / "train.txt"
    path.write_text("\n\n".join(docs) + "\n")
    tok_dir = tmp_path / "tok"
    train_wordpiece([path], vocab_size=120, min_frequency=1).save(tok_dir)
    return path, tok_dir / "tokenizer.json", docs


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_tokenizing_twice_writes_the_same_bytes_and_the_stream_is_the_tokenizer_s(tmp_path):
    """Shards of a fixed size, byte-identical whatever the batch size; the stream is each document's tokens and
    [SEP], with word and document starts where the tokenizer puts them. Catches: output depending on batching,
    a lost or repeated token at a shard boundary, word starts shifted by one, a document boundary missing."""
    path, tok_file, docs = _corpus(tmp_path)
    a = tokenize_to_shards([path], tok_file, tmp_path / "a", shard_tokens=100, log=lambda m: None)
    tokenize_to_shards([path], tok_file, tmp_path / "b", shard_tokens=100, batch_docs=7, log=lambda m: None)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert len(a["shards"]) > 3 and all(s["tokens"] == 100 for s in a["shards"][:-1])
    assert a["documents"] == len(docs) and a["dtype"] == "uint16"
    tok = WordPieceTokenizer.load(tok_file)
    ids, flags = [], []
    for enc in tok.hf.encode_batch(read_corpus(path), add_special_tokens=False):
        ids += [*enc.ids, tok.sep_id]
        w = enc.word_ids
        flags += [(WORD_START if i == 0 or w[i] != w[i - 1] else 0) | (DOC_START if i == 0 else 0) for i in range(len(w))] + [0]
    blocks = ShardBlocks(tmp_path / "a", 32, tok.cls_id, tok.sep_id)
    got_ids, got_flags = blocks.span(0, blocks.n_tokens)
    assert got_ids.tolist() == ids and got_flags.tolist() == flags


def test_an_interrupted_run_resumes_to_the_same_files(tmp_path):
    path, tok_file, _ = _corpus(tmp_path)
    tokenize_to_shards([path], tok_file, tmp_path / "whole", shard_tokens=90, batch_docs=5, log=lambda m: None)

    class Killed(Exception):
        pass

    def kill_after_third_shard(message):
        if "shard 2 written" in message:
            raise Killed

    with pytest.raises(Killed):
        tokenize_to_shards([path], tok_file, tmp_path / "cut", shard_tokens=90, batch_docs=5, log=kill_after_third_shard)
    assert not (tmp_path / "cut" / "manifest.json").exists() and (tmp_path / "cut" / "progress.json").exists()
    with pytest.raises(DataError, match="unfinished run"):
        ShardBlocks(tmp_path / "cut", 32, 2, 3)
    said = []
    tokenize_to_shards([path], tok_file, tmp_path / "cut", shard_tokens=90, batch_docs=5, log=said.append)
    assert any("resuming after shard 2" in m for m in said)  # (not started over)
    assert _files(tmp_path / "cut") == _files(tmp_path / "whole")
    with pytest.raises(DataError, match="holds shards of other inputs or settings"):  # finished: not overwritten
        tokenize_to_shards([path], tok_file, tmp_path / "cut", shard_tokens=80, log=lambda m: None)
    settings = {k: v for k, v in json.loads((tmp_path / "cut" / "manifest.json").read_text()).items()
                if k not in ("tokens", "documents", "shards")}
    (tmp_path / "cut" / "manifest.json").unlink()
    (tmp_path / "cut" / "progress.json").write_text(json.dumps({"settings": {**settings, "shard_tokens": 80}}))
    with pytest.raises(DataError, match="an interrupted run with other shard_tokens;"):  # a resume is refused
        tokenize_to_shards([path], tok_file, tmp_path / "cut", shard_tokens=90, log=lambda m: None)


def test_blocks_are_the_stream_cut_into_windows_with_words_numbered(tmp_path):
    """Block i holds stream tokens [i*C, (i+1)*C) between [CLS] and [SEP]; word ids count whole words, a cut
    word counting as one, -1 on [CLS]/[SEP]. Catches: overlapping or skipped windows, word ids that run across
    blocks, a separator left maskable."""
    path, tok_file, _ = _corpus(tmp_path)
    tokenize_to_shards([path], tok_file, tmp_path / "s", shard_tokens=50, log=lambda m: None)
    tok = WordPieceTokenizer.load(tok_file)
    blocks = ShardBlocks(tmp_path / "s", 18, tok.cls_id, tok.sep_id)
    stream, flags = blocks.span(0, blocks.n_tokens)
    assert len(blocks) == -(-len(stream) // 16)
    rebuilt = []
    for i in range(len(blocks)):
        b = blocks[i]
        tokens, words = b["tokens"], b["word_ids"]
        assert tokens[0] == tok.cls_id and tokens[-1] == tok.sep_id and len(tokens) <= 18
        content = stream[i * 16 : (i + 1) * 16]
        dropped = int(content[0] == tok.sep_id and len(content) > 1)
        assert tokens[1:-1].tolist() == content[dropped:].tolist()
        rebuilt += tokens[1:-1].tolist()
        assert (words[tokens == tok.sep_id] == -1).all() and words[0] == -1
        real = words[words >= 0]
        assert real[0] == 0 and ((real[1:] - real[:-1]) >= 0).all() and ((real[1:] - real[:-1]) <= 1).all()
        starts = (flags[i * 16 + dropped : (i + 1) * 16] & WORD_START).astype(bool)
        inner = words[1:-1].numpy()
        new_word = np.r_[True, inner[1:] != inner[:-1]] & (inner >= 0)
        assert (new_word[1:] == (starts[1:] & (inner[1:] >= 0))).all()
    assert len(rebuilt) >= len(stream) - len(blocks)  # only separators opening a block are dropped


def test_a_changed_truncated_or_missing_shard_is_named(tmp_path):
    path, tok_file, _ = _corpus(tmp_path)
    tokenize_to_shards([path], tok_file, tmp_path / "s", shard_tokens=100, log=lambda m: None)
    shard = tmp_path / "s" / "shard-00001.tokens"
    data = bytearray(shard.read_bytes())
    data[10] ^= 1
    shard.write_bytes(bytes(data))
    with pytest.raises(DataError, match="shard-00001.tokens: changed since it was written"):
        ShardBlocks(tmp_path / "s", 32, 2, 3)
    ShardBlocks(tmp_path / "s", 32, 2, 3, verify=False)  # sizes only: opens
    shard.write_bytes(bytes(data[:-2]))
    with pytest.raises(DataError, match=r"shard-00001.tokens: 198 bytes, the manifest says 200"):
        ShardBlocks(tmp_path / "s", 32, 2, 3, verify=False)
    shard.unlink()
    with pytest.raises(DataError, match="shard-00001.tokens: missing"):
        ShardBlocks(tmp_path / "s", 32, 2, 3)
    tokenize_to_shards([path], tok_file, tmp_path / "t", shard_tokens=100, log=lambda m: None)
    with pytest.raises(DataError, match="another tokenizer"):
        ShardBlocks(tmp_path / "t", 32, 2, 3, tokenizer_sha256="0" * 64)


def test_json_lines_give_the_same_shards_as_text_and_bad_lines_are_named(tmp_path):
    """The same documents as JSON Lines make the same token files; the text reader splits documents as the
    corpus reader does (BOM, CRLF, several blank lines). Catches: a reader that merges or splits documents."""
    path, tok_file, docs = _corpus(tmp_path)
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)))
    tokenize_to_shards([path], tok_file, tmp_path / "a", shard_tokens=100, log=lambda m: None)
    tokenize_to_shards([jsonl], tok_file, tmp_path / "b", shard_tokens=100, log=lambda m: None)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert {k: v for k, v in a.items() if k != "manifest.json"} == {k: v for k, v in b.items() if k != "manifest.json"}
    messy = tmp_path / "messy.txt"
    messy.write_bytes("\ufeffuno\r\ndos\r\n\r\n\r\n\r\ntres\n\n  \ncuatro\n".encode())
    assert list(iter_documents([messy])) == read_corpus(messy) == ["uno\ndos", "tres", "  \ncuatro"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "hola"}\n{"texto": "adiós"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: expected a JSON object with a string 'text'"):
        list(iter_documents([bad]))
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"hola\nadi\xf3s\n")
    with pytest.raises(DataError, match=r"latin.txt:2: not valid UTF-8"):
        list(iter_documents([latin]))


def test_pretraining_from_shards_equals_the_same_blocks_in_memory_and_resumes_exactly(tmp_path):
    """The MLM task reads data.shards; training on them gives the losses and weights of training on the same
    blocks as a list, and a run stopped and resumed from shards ends bit-for-bit where an unbroken one does.
    Catches: a shard reader whose blocks depend on read order or state, a resume that re-reads other blocks."""
    import copy

    from nanofm.config import to_yaml
    from nanofm.engine import Trainer
    from nanofm.engine.tracking import read_metrics
    from nanofm.tasks import build_task, load_task_config

    path, tok_file, _ = _corpus(tmp_path, n_docs=120)
    valid = tmp_path / "valid.txt"
    valid.write_text("\n\n".join(read_corpus(path)[:10]) + "\n")
    from nanofm.cli import main

    main(["data", "tokenize", str(path), "--valid", str(valid), "--tokenizer", str(tok_file), "--out",
          str(tmp_path / "shards"), "--shard-tokens", "64"])
    cfg = load_task_config("configs/bert-mini-mlm-es.yaml", [
        f"data.shards={tmp_path / 'shards'}", "data.max_len=24", "model.max_len=24", "model.d_model=32", "model.n_layers=1",
        "model.n_heads=2", "model.d_ff=64", "train.steps=6", "train.batch_size=8", "train.warmup_steps=1",
        "train.eval_every=0", "train.save_every=0", "train.log_every=1", "train.precision=fp32"])
    parts = build_task(cfg)
    assert isinstance(parts.train_data, ShardBlocks) and len(parts.eval_data) > 0
    model0 = copy.deepcopy(parts.model)

    def train(data, run, model, resume=None, stop=None):
        t = Trainer(model, data, cfg.train, collate=parts.collate, run_dir=run, config_yaml=to_yaml(cfg),
                    resume=resume, progress=False)
        t.fit(stop_after_micro_batches=stop)
        return t

    from_shards = train(parts.train_data, tmp_path / "a", copy.deepcopy(model0))
    in_memory = train([parts.train_data[i] for i in range(len(parts.train_data))], tmp_path / "b", copy.deepcopy(model0))
    losses = lambda run: [r["loss"] for r in read_metrics(run / "metrics.jsonl") if "loss" in r]  # noqa: E731
    assert losses(tmp_path / "a") == losses(tmp_path / "b") and len(losses(tmp_path / "a")) == 6
    for (k, v), w in zip(from_shards.model.state_dict().items(), in_memory.model.state_dict().values()):
        assert torch.equal(v, w), k
    train(parts.train_data, tmp_path / "c", copy.deepcopy(model0), stop=3)
    resumed = train(build_task(cfg).train_data, tmp_path / "c", copy.deepcopy(model0), resume="auto")
    for (k, v), w in zip(from_shards.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(v, w), k


def _mlm_config(shards, steps=4):
    from nanofm.tasks import load_task_config

    return load_task_config("configs/bert-mini-mlm-es.yaml", [
        f"data.shards={shards}", "data.max_len=24", "model.max_len=24", "model.d_model=32", "model.n_layers=1",
        "model.n_heads=2", "model.d_ff=64", f"train.steps={steps}", "train.batch_size=8", "train.micro_batch_size=4",
        "train.warmup_steps=1",
        "train.eval_every=0", "train.save_every=0", "train.log_every=1", "train.precision=fp32"])


def _ddp_worker(rank: int, world: int, port: int, shards: str, out: str) -> None:
    import os

    from safetensors.torch import save_file

    from nanofm.engine import Trainer
    from nanofm.tasks import build_task

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    cfg = _mlm_config(shards)
    parts = build_task(cfg)
    read = []
    data = parts.train_data

    class Recording:  # the blocks this process reads
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            read.append(i)
            return data[i]

    trainer = Trainer(parts.model, Recording(), cfg.train, collate=parts.collate, progress=False)
    trainer.fit()
    torch.save(read, f"{out}/read-{rank}.pt")
    if rank == 0:
        save_file({k: v.clone() for k, v in trainer.model.state_dict().items()}, f"{out}/ddp.safetensors")
    torch.distributed.destroy_process_group()


def test_ddp_from_shards_reads_disjoint_blocks_and_matches_one_process(tmp_path):
    """Two processes (gloo) pretraining from the same shards read disjoint blocks whose union is what one process
    reads, and end with its weights. Catches: every rank reading the whole batch, or the same blocks."""
    import torch.multiprocessing as mp
    from safetensors.torch import load_file

    from nanofm.engine import Trainer
    from nanofm.tasks import build_task
    from tests.train.common import without_key_bias
    from tests.train.test_distributed import _free_port

    path, tok_file, _ = _corpus(tmp_path, n_docs=120)
    tokenize_to_shards([path], tok_file, tmp_path / "shards" / "train", shard_tokens=64, log=lambda m: None)
    tokenize_to_shards([path], tok_file, tmp_path / "shards" / "valid", shard_tokens=64, log=lambda m: None)
    mp.start_processes(_ddp_worker, args=(2, _free_port(), str(tmp_path / "shards"), str(tmp_path)), nprocs=2,
                       start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"read-{r}.pt", weights_only=True) for r in (0, 1))
    assert r0 and r1 and not set(r0) & set(r1)
    cfg = _mlm_config(tmp_path / "shards")
    parts = build_task(cfg)
    single = Trainer(parts.model, parts.train_data, cfg.train, collate=parts.collate, progress=False)
    assert sorted(r0 + r1) == sorted(i for s in range(4) for m in single.sampler.micro_batches(s) for i in m)
    single.fit()
    ddp = without_key_bias(load_file(str(tmp_path / "ddp.safetensors")))
    for k, v in without_key_bias(single.model.state_dict()).items():
        assert (ddp[k] - v).abs().max() <= 1e-5, k


def test_parquet_and_arrow_files_give_the_same_shards_as_json_lines(tmp_path):
    """A Hugging Face `datasets` folder's files (Parquet, Arrow streams), read in record batches, make the same
    token files as the same documents in JSON Lines. Catches: a row lost between record batches, the wrong column."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path, tok_file, docs = _corpus(tmp_path)
    table = pa.table({"id": list(range(len(docs))), "text": docs})
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=7)
    with pa.OSFile(str(tmp_path / "docs.arrow"), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=9)
    (tmp_path / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    tokens = {}
    for name in ("docs.jsonl", "docs.parquet", "docs.arrow"):
        tokenize_to_shards([tmp_path / name], tok_file, tmp_path / name.replace(".", "-"), shard_tokens=100, log=lambda m: None)
        tokens[name] = {k: v for k, v in _files(tmp_path / name.replace(".", "-")).items() if k.startswith("shard-")}
    assert tokens["docs.parquet"] == tokens["docs.jsonl"] == tokens["docs.arrow"]
    with pytest.raises(DataError, match=r"docs.parquet: no column 'body' \(columns: id, text\)"):
        list(iter_documents([tmp_path / "docs.parquet"], "body"))
