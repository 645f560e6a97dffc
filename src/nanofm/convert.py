"""`nanofm convert`: a Hugging Face folder <-> a nanofm run folder.

From Hugging Face, the run folder is what `nanofm pretrain` or `train` would have written, so that every
command reading runs reads it: config.yaml, tokenizer.json (BERT) and checkpoints/step-000000 (best and
latest) holding model.safetensors, and for a BERT classifier labels.json (the folder's id2label). Its
data.dir is empty: no data folder of nanofm's was used to train it. BertModel and BertForMaskedLM /
BertForPreTraining become an "mlm" run (fill-mask, finetune, benchmark beto), BERT classifiers a "finetune"
run, ViT an "image-classify" run (classify). To Hugging Face: mlm and finetune runs (BERT), image-classify
and mae runs (ViT; an MAE gives its encoder as a ViTModel).
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import safe_open

from nanofm.config import ConfigError, to_yaml
from nanofm.engine.cards import write_model_card
from nanofm.engine.checkpoint import checkpoint_name, load_model_weights, read_state_dict, save_checkpoint, set_pointer
from nanofm.engine.run_folder import check_removable, is_run_folder
from nanofm.families.bert.finetune import LABELS_FILE as LABELS, FinetuneDataConfig, FinetuneTaskConfig, load_bert_classifier
from nanofm.families.bert.hf import labels_to_hf
from nanofm.families.bert.model import BertForMaskedLM, BertForSequenceClassification, BertForTokenClassification, BertModel
from nanofm.families.bert.pretrain import CorpusDataConfig, MLMTaskConfig
from nanofm.families.vit.mae import load_pretrained_encoder
from nanofm.families.vit.task import ImageClassifyTaskConfig, ImageDataConfig
from nanofm.families.vit.vit import ViT
from nanofm.interop.folder import image_stats, is_hf_folder, load_hf, save_hf
from nanofm.interop.tokenizer import load_hf_tokenizer, load_tokenizer, read_json, write_json
from nanofm.tasks import open_trained
from nanofm.version import __version__


def _prepare(out: Path, overwrite: bool, ours: Callable[[Path], bool], what: str) -> None:
    """A new or empty `out`; with `overwrite`, one that `ours` recognises is emptied first (nothing else)."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out}: not empty; choose another folder or --overwrite")
        check_removable(out, ours, what)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def convert_from_hf(hf_dir: str | Path, out: str | Path, overwrite: bool = False) -> list[str]:
    """Write run folder `out` from Hugging Face folder `hf_dir`; returns lines describing what was done."""
    hf_dir, out = Path(hf_dir), Path(out)
    conv = load_hf(hf_dir)
    model, cfg = conv.model, conv.model.cfg
    n = sum(p.numel() for p in model.parameters())
    lines = [f"read {hf_dir}: {conv.architecture} -> nanofm {type(model).__name__}, {n / 1e6:.2f}M parameters"]
    lines += [f"  dropped {d}" for d in conv.dropped]
    tok = None
    if isinstance(model, ViT):
        mean, std = image_stats(hf_dir, cfg.in_channels)
        task = ImageClassifyTaskConfig(model=cfg, data=ImageDataConfig(dir="", mean=mean, std=std, classes=conv.labels))
    else:
        try:
            tok = load_hf_tokenizer(hf_dir)
        except FileNotFoundError as e:
            lines.append(f"  no tokenizer ({e}); fill-mask and finetune need one")
        if tok is not None and tok.vocab_size != cfg.vocab_size:
            lines.append(f"  note: the tokenizer has {tok.vocab_size} tokens, the model {cfg.vocab_size} embeddings")
        max_len = min(FinetuneDataConfig.max_len, cfg.max_len)
        if isinstance(model, (BertModel, BertForMaskedLM)):
            task = MLMTaskConfig(model=cfg, data=CorpusDataConfig(dir="", max_len=max_len))
            if isinstance(model, BertModel):
                lines.append("  no masked-LM head: fill-mask cannot use this run; finetune and benchmark beto can")
        else:
            data = FinetuneDataConfig(dir="", tokenizer=str(out / "tokenizer.json"), max_len=max_len)
            task = FinetuneTaskConfig(model=cfg, data=data)
            lines.append(f"  labels {conv.labels} (kept in {LABELS})")
    _prepare(out, overwrite, is_run_folder, "a nanofm run folder")
    config_yaml = to_yaml(task)
    (out / "config.yaml").write_text(config_yaml)
    if tok is not None:
        tok.save(out)  # tokenizer.json and vocab.txt
    written = ["tokenizer.json"] * (tok is not None)
    if isinstance(model, (BertForSequenceClassification, BertForTokenClassification)):
        write_json(out / LABELS, labels_to_hf(conv.labels, cfg.n_labels))
        written.append(LABELS)
    root = out / "checkpoints"
    state = {"step": 0, "total_steps": 0, "metrics": {}, "metrics_step": None, "converted_from": str(hf_dir.resolve()),
             "nanofm_version": __version__}
    name = checkpoint_name(0)
    save_checkpoint(root, name, model, torch.optim.SGD(model.parameters(), lr=0.0), state, config_yaml)
    set_pointer(root, "latest", name), set_pointer(root, "best", name)
    card = write_model_card(out).name
    lines.append(f"wrote {out}: config.yaml (task {task.task}), {''.join(f + ', ' for f in written)}{root / name}/model.safetensors, {card}")
    return lines


def run_model(run_dir: str | Path, checkpoint: str = "best") -> tuple[torch.nn.Module, list[str] | None, Any]:
    """(the model of a BERT or ViT run with its `checkpoint` weights, its class names or None, its config)."""
    run, cfg = open_trained(run_dir, checkpoint)
    run_dir, weights = run.dir, run.checkpoint / "model.safetensors"
    labels = None
    if cfg.task == "finetune":
        model, labels, _ = load_bert_classifier(run_dir, checkpoint)
    elif cfg.task == "mlm":
        with safe_open(str(weights), "pt") as f:  # the names only: the weights are read once, by load_model_weights
            keys = set(f.keys())
        if "mlm_head.dense.weight" in keys:
            model = BertForMaskedLM(cfg.model)
        else:  # an imported BertModel (no "bert." prefix)
            model = BertModel(cfg.model, pooler="pooler.dense.weight" in keys)
        load_model_weights(model, weights)
    elif cfg.task == "image-classify":
        model, labels = ViT(cfg.model), cfg.data.classes
        load_model_weights(model, weights)
    elif cfg.task == "mae":
        model = ViT(replace(cfg.model, n_classes=0))
        load_pretrained_encoder(model, read_state_dict(weights))
    else:
        raise ConfigError(f"{run_dir}: a {cfg.task!r} run; nanofm exports BERT (mlm, finetune) and ViT (image-classify, mae) runs")
    return model, labels, cfg


def convert_to_hf(run_dir: str | Path, out: str | Path, checkpoint: str = "best", overwrite: bool = False) -> list[str]:
    """Write Hugging Face folder `out` from run folder `run_dir`; returns lines describing what was done."""
    run_dir, out = Path(run_dir), Path(out)
    model, labels, cfg = run_model(run_dir, checkpoint)
    tok, stats, lines = None, None, []
    if isinstance(model, ViT):
        stats = (cfg.data.mean, cfg.data.std) if cfg.data.mean is not None else None
        if model.cfg.pos == "sincos":
            lines.append("  note: fixed sin-cos positions written as the learned table (the same values)")
    elif any((run_dir / f).is_file() for f in ("tokenizer.json", "vocab.txt")):
        tok = load_tokenizer(run_dir)
    else:
        lines.append(f"  no tokenizer in {run_dir}: the folder holds the model only")
    _prepare(out, overwrite, is_hf_folder, "a Hugging Face folder (config.json)")
    files = save_hf(model, out, labels, tok, stats)
    arch = read_json(out / "config.json")["architectures"][0]
    auto = {"BertForMaskedLM": "AutoModelForMaskedLM", "BertForSequenceClassification": "AutoModelForSequenceClassification",
            "BertForTokenClassification": "AutoModelForTokenClassification",
            "ViTForImageClassification": "AutoModelForImageClassification"}.get(arch, "AutoModel")
    files.append(write_model_card(run_dir, out=out, export=auto).name)
    return [f"wrote {out}: {', '.join(files)} ({arch}, from {run_dir} checkpoint {checkpoint})", *lines]
