"""Supervised fine-tuning of BERT on a labelled task folder (see nanofm.data.spanish_tasks for the format):
sequence classification on the pooled [CLS] vector (a sentence pair, as in PAWS-X and XNLI, is one sequence
[CLS] a [SEP] b [SEP] with segment ids 0 then 1), or token classification (POS, NER) with each word's
label on its first sub-word. Starts from a pretrained run's weights (`init`) or from random weights of
the same architecture (init: null), which is what the BETO-style table compares.

Metrics on the dev split while training (the test split is reported at the end): accuracy, and for BIO
tagging tasks entity-level F1 (an entity counts when its type and both boundaries are right; an I- tag
without its B- starts an entity, as in conlleval). It equals seqeval's default mode (checked in the tests).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from torch import Tensor, nn

from nanofm.config import ConfigError, require, require_fits, to_dict
from nanofm.core.output import IGNORE_INDEX
from nanofm.data import PadCollate
from nanofm.data.spanish_tasks import TaskData, load_task
from nanofm.engine import TrainConfig
from nanofm.engine.checkpoint import pick_checkpoint, read_state_dict
from nanofm.engine.task import TaskParts
from nanofm.errors import DataError
from nanofm.families.bert.hf import config_from_hf, labels_from_hf, labels_to_hf
from nanofm.families.bert.model import BertConfig, BertForSequenceClassification, BertForTokenClassification, load_pretrained_encoder
from nanofm.interop import is_hf_folder, load_hf, load_tokenizer, read_config, tokenizer_files
from nanofm.interop.tokenizer import read_json
from nanofm.registry import get_config
from nanofm.runs import open_run, pick_device, ranked
from nanofm.text.wordpiece import WordPieceTokenizer


@dataclass
class FinetuneDataConfig:
    dir: str = "data/beto-tasks/libreoffice-area"  # task folder: task.json, train.tsv, dev.tsv, test.tsv
    tokenizer: str = "data/corpus-es/tokenizer.json"  # the pretrained model's tokenizer (a file, or a Hugging Face folder)
    max_len: int = 128  # longer examples are truncated
    labels: int | None = None  # train on this many labelled examples (a seeded random choice; None: all), the
    # scarce-label setting where pretraining pays most
    dev_size: int | None = None  # evaluate while training on this many dev examples (the same seeded choice for
    # every run; None: all): a short run's evaluations then cost seconds, not most of its time

    def __post_init__(self):
        require(self.labels is None or self.labels >= 1, f"must be at least 1 (or null: all), got {self.labels}", "labels")
        require(self.dev_size is None or self.dev_size >= 1, f"must be at least 1 (or null: all), got {self.dev_size}",
                "dev_size")


@dataclass
class FinetuneTaskConfig:
    task: Literal["finetune"] = "finetune"  # which task this config is for
    init: str | None = None  # pretrained run folder (its best checkpoint), Hugging Face BERT folder or model.safetensors; None: random
    model: BertConfig = field(default_factory=lambda: get_config("bert-mini"))  # n_labels: set from the task
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)  # the labelled task
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(steps=1000, batch_size=32, lr=5e-4, warmup_steps=100, schedule="linear",
                                            eval_every=250, save_every=250, best_metric="eval/score", best_mode="max",
                                            log_every=20)
    )  # the training run

    def __post_init__(self):
        require_fits(self, "data.max_len")  # [CLS] and [SEP] included


def encode_examples(task: TaskData, split: str, tok: WordPieceTokenizer, max_len: int) -> list[dict[str, Tensor]]:
    """Examples -> {"tokens": (T,), "segments": (T,) 0 or 1 (1 over the second text of a pair and its [SEP]),
    "targets": () class id, or (T,) tag ids on first sub-words}. A pair too long loses tokens from its longer text."""
    index = {label: i for i, label in enumerate(task.labels)}

    def label_id(label: str, n: int) -> int:
        if label not in index:
            raise DataError(f"{task.name}, {split} split: example {n + 1} has label {label!r}, not among {task.labels}")
        return index[label]

    out = []
    for n, ex in enumerate(task.splits[split]):
        if task.kind == "classification":
            enc = tok.encode(ex.text, max_len) if ex.text_b is None else tok.encode_pair(ex.text, ex.text_b, max_len)
            out.append({"tokens": torch.tensor(enc.ids), "segments": torch.tensor(enc.type_ids),
                        "targets": torch.tensor(label_id(ex.label, n))})
            continue
        enc = tok.encode_words(ex.words, max_length=max_len)
        targets, prev = [], None
        for w in enc.word_ids:  # a word's tag on its first sub-word only
            targets.append(label_id(ex.tags[w], n) if w is not None and w != prev else IGNORE_INDEX)
            prev = w
        out.append({"tokens": torch.tensor(enc.ids), "segments": torch.tensor(enc.type_ids), "targets": torch.tensor(targets)})
    return out


def bio_entities(tags: list[str]) -> set[tuple[int, int, str]]:
    """BIO tags -> {(start, end, type)}; an I- without its B- starts an entity (conlleval's convention)."""
    spans, start, kind = set(), None, None
    for i, tag in enumerate([*tags, "O"]):
        inside = tag.startswith("I-") and kind == tag[2:]
        if start is not None and not inside:
            spans.add((start, i, kind))
            start, kind = None, None
        if tag.startswith("B-") or (tag.startswith("I-") and not inside):
            start, kind = i, tag[2:]
    return spans


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict[str, float]:
    """Micro-averaged entity precision, recall and entity_f1 over sentences of BIO tags (seqeval's default mode)."""
    found = correct = gold_n = 0
    for g, p in zip(gold, pred, strict=True):
        ge, pe = bio_entities(g), bio_entities(p)
        found, gold_n, correct = found + len(pe), gold_n + len(ge), correct + len(pe & ge)
    precision, recall = correct / max(found, 1), correct / max(gold_n, 1)
    return {"precision": precision, "recall": recall, "entity_f1": 2 * precision * recall / max(precision + recall, 1e-12)}


@torch.no_grad()
def predict(model, data: list[dict[str, Tensor]], collate, batch_size: int = 64) -> list[Tensor]:
    """Predicted ids for each example: () for sequences, (n_words,) for tagging (at first sub-words)."""
    model.eval()
    device = next(model.parameters()).device
    preds = []
    for i in range(0, len(data), batch_size):
        chunk = data[i : i + batch_size]
        batch = collate(chunk)
        logits = model(tokens=batch["tokens"].to(device), segments=batch["segments"].to(device)).logits.argmax(-1).cpu()
        for row, ex in zip(logits, chunk):
            preds.append(row if row.ndim == 0 else row[: len(ex["targets"])][ex["targets"] != IGNORE_INDEX])
    return preds


def score(task: TaskData, model, data: list[dict[str, Tensor]], collate) -> dict[str, float]:
    """accuracy (of sequences or of words) and, for BIO tagging, entity-level precision, recall and F1;
    `score` is the task's metric."""
    preds = predict(model, data, collate)
    golds = [ex["targets"] if ex["targets"].ndim == 0 else ex["targets"][ex["targets"] != IGNORE_INDEX] for ex in data]
    right = sum(int((p == g).sum()) for p, g in zip(preds, golds))
    total = sum(g.numel() for g in golds)
    metrics = {"accuracy": right / max(total, 1)}
    if task.metric == "entity_f1":
        metrics.update(entity_scores([[task.labels[i] for i in g.tolist()] for g in golds],
                                     [[task.labels[i] for i in p.tolist()] for p in preds]))
    metrics["score"] = metrics[task.metric]
    return metrics


def build(cfg: FinetuneTaskConfig) -> TaskParts:
    task = load_task(cfg.data.dir)
    tok = load_tokenizer(cfg.data.tokenizer)
    cfg = replace(cfg, model=replace(cfg.model, vocab_size=tok.vocab_size, pad_id=tok.pad_id, n_labels=len(task.labels)))
    torch.manual_seed(cfg.train.seed)
    model_cls = BertForSequenceClassification if task.kind == "classification" else BertForTokenClassification
    model = model_cls(cfg.model)
    start = "random weights"
    if cfg.init:
        path = Path(cfg.init)
        if is_hf_folder(path):  # the encoder (and pooler) of any Hugging Face BERT; its head is dropped
            weights, state = path, load_hf(path, target="BertModel").model.state_dict()
        else:
            weights = path if path.suffix == ".safetensors" else pick_checkpoint(path, "best") / "model.safetensors"
            state = read_state_dict(weights)
        load_pretrained_encoder(model, state)
        start = f"pretrained weights {weights}"
    max_len = min(cfg.data.max_len, cfg.model.max_len)
    train, dev, test = (encode_examples(task, s, tok, max_len) for s in ("train", "dev", "test"))
    train = _seeded_subset(train, cfg.data.labels, cfg.train.seed)
    dev = _seeded_subset(dev, cfg.data.dev_size, 0)  # one choice for every run and seed
    collate = PadCollate({"tokens": tok.pad_id, "segments": 0, "targets": IGNORE_INDEX})

    def report(model, eval_data, metrics) -> str:
        m = score(task, model, test, collate)
        silver = " (silver labels)" if task.silver else ""
        rest = [f"{k} {v:.4f}" for k, v in m.items() if k not in ("score", task.metric)]
        return f"test{silver}: " + ", ".join([f"{task.metric} {m['score']:.4f}", *rest])

    return TaskParts(
        model=model, train_data=train, eval_data=dev, collate=collate,
        compute_metrics=lambda model, data: score(task, model, data, collate), report=report,
        describe=(f"fine-tuning {task.name} ({task.kind}{', silver' if task.silver else ''}, {len(task.labels)} labels, "
                  f"metric {task.metric}): {len(train)} train, {len(dev)} dev, {len(test)} test; from {start}"),
        files=tokenizer_files(cfg.data.tokenizer),
        texts={LABELS_FILE: json.dumps(labels_to_hf(task.labels, len(task.labels)), ensure_ascii=False, indent=1) + "\n"},
        task_data=task, test_data=test, tokenizer=tok, config=cfg,
    )


def _seeded_subset(examples: list, n: int | None, seed: int) -> list:
    """n of the examples (all when n is None or not smaller), a random choice by `seed`, in their order."""
    if n is None or n >= len(examples):
        return examples
    order = torch.randperm(len(examples), generator=torch.Generator().manual_seed(seed))
    return [examples[i] for i in sorted(order[:n].tolist())]


def finetune_config(run_dir: str | Path, task_dir: str, from_scratch: bool) -> dict[str, Any]:
    """The fine-tuning config (as a dict, for overrides) for a pretrained run folder or a Hugging Face BERT
    folder: its model section and tokenizer, the task folder, and init = the run (or None with from_scratch)."""
    run_dir = Path(run_dir)
    if is_hf_folder(run_dir):
        try:
            model = config_from_hf(read_config(run_dir))
        except ValueError as e:
            raise ConfigError(f"{run_dir}: {e}; fine-tuning reads Hugging Face BERT folders") from None
        tokenizer, max_len = str(run_dir), min(FinetuneDataConfig.max_len, model.max_len)
    else:
        pre = open_run(run_dir, None).task_config()
        if pre.task != "mlm":
            raise ConfigError(f"{run_dir}: not a pretraining run (task {pre.task!r}); fine-tune from a `nanofm pretrain` run")
        model, tokenizer, max_len = pre.model, str(run_dir / "tokenizer.json"), pre.data.max_len
    data = FinetuneDataConfig(dir=task_dir, tokenizer=tokenizer, max_len=max_len)
    return to_dict(FinetuneTaskConfig(init=None if from_scratch else str(run_dir), model=model, data=data))


# ---------------------------------------------------------------- using a fine-tuned run

LABELS_FILE = "labels.json"  # a classifier run's class names, Hugging Face's way: {"id2label": {"0": ...}, "label2id": {...}}
WORD = re.compile(r"\w+|[^\w\s]")  # a tagger's words: runs of letters and digits, and each other sign alone


def load_bert_classifier(path: str | Path, checkpoint: str = "best") -> tuple[nn.Module, list[str], int]:
    """(model, class names, longest input) of a fine-tuned BERT: a `nanofm finetune` run folder (sequence or
    token classifier, told apart by its weights: only the sequence classifier has a pooler) or a Hugging Face
    BertForSequenceClassification / BertForTokenClassification folder. Class names missing: LABEL_i."""
    if is_hf_folder(path):
        conv = load_hf(path)
        if not isinstance(conv.model, (BertForSequenceClassification, BertForTokenClassification)):
            raise DataError(f"{path}: a {conv.architecture}; a classifier needs BertForSequenceClassification or "
                            "BertForTokenClassification weights")
        cfg = conv.model.cfg
        return conv.model, list(conv.labels or [f"LABEL_{i}" for i in range(cfg.n_labels)]), cfg.max_len
    run = open_run(path, checkpoint, ("finetune",), "a fine-tuning")
    cfg = run.config(FinetuneTaskConfig)
    with safe_open(str(run.checkpoint / "model.safetensors"), "pt") as f:  # the names only
        pooled = "bert.pooler.dense.weight" in f.keys()
    model = run.load_weights((BertForSequenceClassification if pooled else BertForTokenClassification)(cfg.model))
    labels = None
    if (run.dir / LABELS_FILE).is_file():
        labels = labels_from_hf(read_json(run.dir / LABELS_FILE))
    elif cfg.data.dir and (Path(cfg.data.dir) / "task.json").is_file():  # a run from before labels.json
        labels = load_task(cfg.data.dir).labels
    return model, labels or [f"LABEL_{i}" for i in range(cfg.model.n_labels)], min(cfg.data.max_len, cfg.model.max_len)


def load_fine_tuned(path: str | Path, checkpoint: str = "best",
                    device: str | torch.device | None = None) -> "TextClassifier | TokenTagger":
    """The predictor of a fine-tuned BERT (see load_bert_classifier): a TextClassifier or a TokenTagger, as its head."""
    model, labels, max_len = load_bert_classifier(path, checkpoint)
    cls = TextClassifier if isinstance(model, BertForSequenceClassification) else TokenTagger
    return cls(model, load_tokenizer(path), labels, max_len, device)


class _FineTuned:
    """What the two predictors share: the model on its device, the tokenizer, the class names, batching."""

    other = ""  # what to load a model of the other head with

    def __init__(self, model: nn.Module, tok: WordPieceTokenizer, labels: list[str], max_len: int,
                 device: str | torch.device | None = None):
        self.device = pick_device(device)
        self.model, self.tok, self.labels, self.max_len = model.eval().to(self.device), tok, labels, max_len
        self.collate = PadCollate({"tokens": tok.pad_id, "segments": 0})

    @classmethod
    def load(cls, path: str | Path, checkpoint: str = "best", device: str | torch.device | None = None):
        predictor = load_fine_tuned(path, checkpoint, device)
        if not isinstance(predictor, cls):
            raise ConfigError(f"{path}: {cls.other}")
        return predictor

    def _logits(self, encodings: list) -> Tensor:
        """Encodings -> logits of the padded batch, on the CPU: (B, C) or (B, T, C)."""
        x = self.collate([{"tokens": torch.tensor(e.ids), "segments": torch.tensor(e.type_ids)} for e in encodings])
        return self.model(x["tokens"].to(self.device), x["segments"].to(self.device)).logits.float().cpu()


class TextClassifier(_FineTuned):
    """A fine-tuned sequence classifier: `TextClassifier.load("runs/areas")("Abra el menú Formato.")` ->
    [(label, probability), ...], likeliest first; a pair of texts (PAWS-X, XNLI) is a tuple; a list is a batch."""

    other = "a token classifier (tagger); load it with TokenTagger"

    @torch.no_grad()
    def __call__(self, texts: str | tuple[str, str] | list, k: int | None = None) -> list:
        """One text (or pair) -> its labels with probabilities (the k likeliest; None: all); a list -> one such list each."""
        batch = texts if isinstance(texts, list) else [texts]
        probs = self._logits([self.tok.encode(t, self.max_len) if isinstance(t, str) else
                              self.tok.encode_pair(*t, self.max_len) for t in batch]).softmax(-1)  # (B, C)
        out = ranked(probs, self.labels, k)
        return out if isinstance(texts, list) else out[0]


class TokenTagger(_FineTuned):
    """A fine-tuned token classifier (POS, NER): `TokenTagger.load("runs/ner")("Juan vive en Madrid.")` ->
    [(word, tag), ...]; `entities(text)` -> [(words, type)] from BIO tags. A text is split into words (letters
    and digits, and each other sign alone); a list is a batch, of texts or of lists of words."""

    other = "a sequence classifier; load it with TextClassifier"

    @torch.no_grad()
    def __call__(self, texts: str | list) -> list:
        """A text -> [(word, tag)] for its words (words past the model's length get no tag and are left out);
        a list of texts or of word lists -> one such list each."""
        batch = [texts] if isinstance(texts, str) else texts
        sentences = [WORD.findall(t) if isinstance(t, str) else list(t) for t in batch]
        encs = [self.tok.encode_words(words, max_length=self.max_len) for words in sentences]
        tags = self._logits(encs).argmax(-1)  # (B, T)
        out = []
        for words, enc, row in zip(sentences, encs, tags):
            firsts = {w: i for i, w in reversed(list(enumerate(enc.word_ids))) if w is not None}  # word -> first sub-word
            out.append([(words[w], self.labels[int(row[i])]) for w, i in sorted(firsts.items())])
        return out[0] if isinstance(texts, str) else out

    def entities(self, text: str) -> list[tuple[str, str]]:
        """The entities of BIO tags (an I- without its B- starts one): [(their words joined, type)]."""
        tagged = self(text)
        spans = sorted(bio_entities([t for _, t in tagged]))
        return [(" ".join(w for w, _ in tagged[a:b]), kind) for a, b, kind in spans]
