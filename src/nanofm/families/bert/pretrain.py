"""Masked-language-model pretraining (BERT, BETO): a corpus of documents, a WordPiece tokenizer, documents
packed into blocks of max_len tokens, dynamic whole-word masking, the MLM head scored at masked positions.

Data: a folder with train.txt and valid.txt (documents separated by a blank line) and tokenizer.json, as
written by `nanofm data prepare corpus --lang es`, or brought by the user (then set data.tokenizer), tokenized
and packed in memory at every start; or, for a corpus of any size, the memory-mapped shards of `nanofm data
tokenize` (data.shards: its train/ and valid/ folders, tokenized once; see data/shards.py).
Metrics on held-out blocks, masked once with a fixed seed: masked-token accuracy and perplexity, beside
the frequency baseline (always guessing the commonest training token).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from nanofm.config import require, require_fits
from nanofm.core.output import IGNORE_INDEX
from nanofm.data.collate import pad_sequences
from nanofm.data.corpus import read_corpus
from nanofm.data.shards import ShardBlocks
from nanofm.hashing import sha256_file
from nanofm.engine import TrainConfig
from nanofm.engine.checkpoint import load_model_weights, pick_checkpoint
from nanofm.engine.task import TaskParts
from nanofm.errors import DataError
from nanofm.families.bert.masking import MaskingConfig, MLMCollator, pack_documents
from nanofm.families.bert.model import BertConfig, BertForMaskedLM
from nanofm.interop import is_hf_folder, load_hf, load_hf_tokenizer
from nanofm.registry import get_config
from nanofm.runs import load_trained, pick_device
from nanofm.text.wordpiece import WordPieceTokenizer


@dataclass
class CorpusDataConfig:
    dir: str = "data/corpus-es"  # folder with train.txt and valid.txt (documents separated by a blank line)
    tokenizer: str | None = None  # tokenizer.json / vocab.txt / folder; None: the one in `dir`
    max_len: int = 128  # tokens per packed block, [CLS] and [SEP] included
    eval_blocks: int = 400  # held-out blocks scored at each evaluation (0: all)
    eval_seed: int = 1234  # the held-out blocks are masked once, with this seed
    shards: str | None = None  # folder of `nanofm data tokenize` (train/, valid/): read memory-mapped instead of
    # train.txt and valid.txt (without valid/, dir's valid.txt); the tokenizer is theirs unless data.tokenizer is set
    verify_shards: bool = True  # check every shard's SHA-256 against the manifest at the start


@dataclass
class MLMTaskConfig:
    task: Literal["mlm"] = "mlm"  # which task this config is for
    model: BertConfig = field(default_factory=lambda: get_config("bert-mini"))  # vocab_size: set from the tokenizer
    data: CorpusDataConfig = field(default_factory=CorpusDataConfig)  # corpus and tokenizer
    masking: MaskingConfig = field(default_factory=MaskingConfig)  # 15% of words; 80% [MASK], 10% random, 10% kept
    init: str | None = None  # start from a pretraining run's weights (its best checkpoint) or a model.safetensors:
    # BERT's second phase, the same model on longer blocks; None: random weights
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=3000, batch_size=32, lr=1e-3, warmup_steps=300, eval_every=500,
                                            save_every=500, best_metric="eval/accuracy", best_mode="max", log_every=20)
    )  # the training run

    def __post_init__(self):
        require(self.data.max_len >= 3, f"data.max_len must be at least 3 ([CLS], a token, [SEP]), got {self.data.max_len}",
                "data.max_len")
        require_fits(self, "data.max_len")  # [CLS] and [SEP] included


def tokenizer_path(data: CorpusDataConfig) -> Path:
    if data.tokenizer:
        return Path(data.tokenizer)
    return Path(data.shards) / "train" / "tokenizer.json" if data.shards else Path(data.dir) / "tokenizer.json"


def load_blocks(path: Path, tok: WordPieceTokenizer, max_len: int) -> list[dict[str, Tensor]]:
    """A corpus file -> packed blocks {"tokens": (L,), "word_ids": (L,)}."""
    docs = read_corpus(path)
    if not docs:
        raise DataError(f"{path}: no documents (expected text, documents separated by a blank line)")
    encodings = tok.hf.encode_batch(docs, add_special_tokens=False)
    return pack_documents(((e.ids, e.word_ids) for e in encodings), max_len, tok.cls_id, tok.sep_id)


class MLMCollate:
    """Training blocks are masked afresh at each call; held-out blocks arrive masked (they hold targets)."""

    def __init__(self, masker: MLMCollator):
        self.masker, self.pad_id = masker, masker.pad_id

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Tensor]:
        if "targets" not in examples[0]:
            return self.masker(examples)
        return {"tokens": pad_sequences([ex["tokens"] for ex in examples], self.pad_id),
                "targets": pad_sequences([ex["targets"] for ex in examples], IGNORE_INDEX)}


def mask_once(blocks: list[dict[str, Tensor]], masker: MLMCollator) -> list[dict[str, Tensor]]:
    """Fixed masks for held-out blocks (the seeded collator depends on each block's content only)."""
    out = []
    for b in blocks:
        batch = masker([b])
        out.append({"tokens": batch["tokens"][0], "targets": batch["targets"][0]})
    return out


@torch.no_grad()
def mlm_metrics(model: BertForMaskedLM, data: list[dict[str, Tensor]], collate: MLMCollate, batch_size: int = 32,
                baseline_id: int | None = None) -> dict[str, float]:
    """Masked-token accuracy and perplexity over held-out blocks (and the frequency baseline's accuracy)."""
    device = next(model.parameters()).device
    model.eval()
    correct = total = base = 0
    nll = 0.0
    for i in range(0, len(data), batch_size):
        batch = {k: v.to(device) for k, v in collate(data[i : i + batch_size]).items()}
        out = model(**batch)
        targets = batch["targets"][batch["targets"] != IGNORE_INDEX]  # (N,)
        correct += int((out.logits.argmax(-1) == targets).sum())
        base += int((targets == baseline_id).sum()) if baseline_id is not None else 0
        nll += float(out.loss) * len(targets)
        total += len(targets)
    metrics = {"accuracy": correct / max(total, 1), "perplexity": math.exp(nll / max(total, 1))}
    if baseline_id is not None:
        metrics["baseline_accuracy"] = base / max(total, 1)
    return metrics


def load_splits(data: CorpusDataConfig, tok: WordPieceTokenizer, tok_file: Path) -> tuple[Sequence, list]:
    """(training blocks, held-out blocks): from shards (training blocks read on demand) or the text files."""
    root = Path(data.dir)
    if data.shards:
        shards, digest = Path(data.shards), sha256_file(tok_file)
        read = lambda split: ShardBlocks(shards / split, data.max_len, tok.cls_id, tok.sep_id, data.verify_shards, digest)  # noqa: E731
        train = read("train")
        if (shards / "valid").is_dir():
            valid = read("valid")
            return train, [valid[i] for i in range(min(len(valid), data.eval_blocks or len(valid)))]
        if not (root / "valid.txt").is_file():
            raise FileNotFoundError(f"{shards / 'valid'}: no held-out shards and no {root / 'valid.txt'}; tokenize "
                                    "one with `nanofm data tokenize ... --valid FILE` or set data.dir")
        return train, load_blocks(root / "valid.txt", tok, data.max_len)[: data.eval_blocks or None]
    train = load_blocks(root / "train.txt", tok, data.max_len)
    return train, load_blocks(root / "valid.txt", tok, data.max_len)[: data.eval_blocks or None]


def commonest_token(train: Sequence, tok: WordPieceTokenizer) -> int:
    """The commonest non-special token of the training data (the frequency baseline)."""
    if isinstance(train, ShardBlocks):
        counts = train.token_counts(tok.vocab_size)
    else:
        counts = np.bincount(torch.cat([b["tokens"] for b in train]).numpy(), minlength=tok.vocab_size)
    counts[sorted(tok.special_ids)] = -1
    return int(counts.argmax())


def build(cfg: MLMTaskConfig) -> TaskParts:
    root = Path(cfg.data.dir)
    missing = [n for n in ("train.txt", "valid.txt") if not (root / n).is_file()]
    if missing and not cfg.data.shards:
        raise FileNotFoundError(f"{root}: missing {', '.join(missing)}; run `nanofm data prepare corpus --lang es "
                                f"--out {root}` or set data.dir to a folder of your own train.txt and valid.txt")
    tok_file = tokenizer_path(cfg.data)
    if not tok_file.exists():
        raise FileNotFoundError(f"{tok_file}: no tokenizer; `nanofm data prepare corpus` trains one "
                                "(--vocab-size), or set data.tokenizer")
    tok = WordPieceTokenizer.load(tok_file)
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size, pad_id=tok.pad_id))
    torch.manual_seed(cfg.train.seed)
    model = BertForMaskedLM(cfg.model)
    if cfg.init:
        path = Path(cfg.init)
        load_model_weights(model, path if path.suffix == ".safetensors" else pick_checkpoint(path, "best") / "model.safetensors")
    train, valid = load_splits(cfg.data, tok, tok_file)
    special = sorted(tok.special_ids)
    make = lambda seed: MLMCollator(tok.vocab_size, tok.mask_id, tok.pad_id, special, cfg.masking, seed)  # noqa: E731
    collate = MLMCollate(make(None))
    valid = mask_once(valid, make(cfg.data.eval_seed))
    commonest = commonest_token(train, tok)
    n_tokens = train.n_tokens if isinstance(train, ShardBlocks) else sum(len(b["tokens"]) for b in train)
    source = f"shards {cfg.data.shards}" if cfg.data.shards else root.name

    def compute_metrics(model, data) -> dict[str, float]:
        return mlm_metrics(model, data, collate, baseline_id=commonest)

    def report(model, eval_data, metrics) -> str:  # the final evaluation's figures: no second pass
        return (f"held-out masked tokens: accuracy {metrics['eval/accuracy']:.2%} (frequency baseline, always "
                f"{tok.tokens([commonest])[0]!r}: {metrics['eval/baseline_accuracy']:.2%}), "
                f"perplexity {metrics['eval/perplexity']:.1f}")

    return TaskParts(
        model=model, train_data=train, eval_data=valid, collate=collate, compute_metrics=compute_metrics,
        report=report,
        describe=(f"masked-language-model pretraining ({source}): {len(train)} blocks of <= {cfg.data.max_len} "
                  f"tokens ({n_tokens:,} tokens), {len(valid)} held-out blocks; WordPiece vocabulary {tok.vocab_size}"),
        files={"tokenizer.json": tok_file},
        tokenizer=tok, config=cfg,
    )


# ---------------------------------------------------------------- using a pretrained run


class FillMask:
    """A pretrained run folder or a Hugging Face BERT folder with its MLM head:
    `FillMask.load("runs/x")("La capital de [MASK] es Madrid.", k=5)`; a list of texts is a batch."""

    def __init__(self, model: BertForMaskedLM, tok: WordPieceTokenizer, device: str | torch.device | None = None):
        self.device = pick_device(device)
        self.model, self.tok = model.eval().to(self.device), tok

    @classmethod
    def load(cls, run_dir: str | Path, checkpoint: str = "best", device: str | torch.device | None = None) -> "FillMask":
        if is_hf_folder(run_dir):  # `checkpoint` does not apply: the folder holds one set of weights
            conv = load_hf(run_dir)
            if not isinstance(conv.model, BertForMaskedLM):
                raise DataError(f"{run_dir}: a {conv.architecture}; fill-mask needs BertForMaskedLM or BertForPreTraining weights")
            return cls(conv.model, load_hf_tokenizer(run_dir), device)
        _, model = load_trained(run_dir, "mlm", "a masked-language-model", BertForMaskedLM, checkpoint)
        return cls(model, WordPieceTokenizer.load(Path(run_dir) / "tokenizer.json"), device)

    def __call__(self, text: str | list[str], k: int = 5) -> list:
        """For each [MASK] in text, the k likeliest tokens with their probabilities; a list of texts -> one such
        list each, computed in one padded forward pass. A text longer than the model is cut at its max_len
        tokens, with a warning on stderr naming the masks left unfilled."""
        texts = text if isinstance(text, list) else [text]
        out = self._fill([self._ids_and_masks(t) for t in texts], k) if texts else []
        return out if isinstance(text, list) else out[0]

    def _ids_and_masks(self, text: str) -> tuple[list[int], list[int]]:
        """([CLS] text [SEP] ids, cut to the model's length; the positions of the masks kept in them)."""
        limit = self.model.cfg.max_len
        ids = self.tok.encode(text).ids  # (T,): [CLS] text [SEP], whole
        masks = [i for i, t in enumerate(ids) if t == self.tok.mask_id]  # positions of masks 1..M
        if not masks:
            raise DataError(f"no [MASK] in {excerpt(text)!r}")
        if len(ids) > limit:
            kept = sum(i < limit - 1 for i in masks)  # the first `kept` masks lie in [CLS] text[: limit - 2]
            one = kept == len(masks) - 1
            past = f"mask {len(masks)} lies" if one else f"masks {kept + 1}-{len(masks)} lie"
            what = f"{excerpt(text)!r} ({len(ids):,} tokens)"
            if not kept:
                raise DataError(f"{what}: its {past} past the model's {limit} tokens; put a [MASK] in the first {limit - 2}")
            lost = f"{past} past them and {'was' if one else 'were'} not filled" if kept < len(masks) else "every [MASK] lies within them"
            print(f"warning: {what} was truncated at the model's {limit} tokens: {lost}", file=sys.stderr)
            ids, masks = ids[: limit - 1] + [self.tok.sep_id], masks[:kept]  # (limit,): as encode(max_length=limit)
        return ids, masks

    @torch.no_grad()
    def _fill(self, batch: list[tuple[list[int], list[int]]], k: int) -> list[list[list[tuple[str, float]]]]:
        """One padded forward pass; the MLM head (the vocabulary-sized matmul) runs at the masks only."""
        tokens = torch.full((len(batch), max(len(ids) for ids, _ in batch)), self.tok.pad_id, dtype=torch.long)  # (B, T)
        for i, (ids, _) in enumerate(batch):
            tokens[i, : len(ids)] = torch.tensor(ids)
        rows = torch.tensor([i for i, (_, masks) in enumerate(batch) for _ in masks])  # (N,) over all masks
        cols = torch.tensor([j for _, masks in batch for j in masks])
        h = self.model.bert(tokens.to(self.device))  # (B, T, D); padding left out of attention
        probs = self.model.mlm_head(h[rows, cols]).float().softmax(-1).cpu()  # (N, V)
        top = probs.topk(k, dim=-1)
        words = self.tok.tokens(top.indices.flatten().tolist())
        answers = [[(w, q) for w, q in zip(words[n * k : (n + 1) * k], pr)] for n, pr in enumerate(top.values.tolist())]
        it = iter(answers)  # the masks of all texts, in order
        return [[next(it) for _ in masks] for _, masks in batch]


def excerpt(text: str, n: int = 60) -> str:
    """The first n characters of text (then "..."), for messages that must not echo a whole document."""
    return text if len(text) <= n else text[:n] + "..."
