"""Tiny copy-task trainers for the training-engine tests."""

from __future__ import annotations

import dataclasses

import torch

from nanofm.config import to_yaml
from nanofm.engine import TrainConfig, Trainer
from nanofm.families.seq2seq.copy import CopyDataConfig, CopyTaskConfig, build


def tiny_config(dropout: float = 0.0, **train) -> CopyTaskConfig:
    cfg = CopyTaskConfig(data=CopyDataConfig(min_len=2, max_len=9, train_size=64, eval_size=16))
    cfg.model = dataclasses.replace(cfg.model, d_model=32, n_heads=2, d_ff=64, dropout=dropout)
    base = dict(steps=8, batch_size=16, lr=3e-3, warmup_steps=2, eval_every=0, best_metric=None, log_every=1)
    cfg.train = TrainConfig(**{**base, **train})
    return cfg


def make_trainer(cfg: CopyTaskConfig, run_dir=None, resume=None, model=None, **kw) -> Trainer:
    parts = build(cfg)
    return Trainer(
        model if model is not None else parts.model, parts.train_data, cfg.train, eval_data=kw.pop("eval_data", None),
        collate=parts.collate, run_dir=run_dir, config_yaml=to_yaml(cfg), resume=resume, progress=False, **kw,
    )


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def optimizer_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.clone() for i, s in trainer.optimizer.state_dict()["state"].items() for k, v in s.items()}


def without_key_bias(w: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The attention key bias has a mathematically zero gradient (softmax ignores a constant shift of the
    scores), so its float rounding noise, amplified by Adam's normalisation, is all it learns: leave it out."""
    out = dict(w)
    for name, t in w.items():
        if name.endswith("qkv_proj.bias"):
            d = t.numel() // 3
            out[name] = torch.cat([t[:d], t[2 * d :]])
        elif name.endswith("kv_proj.bias"):
            out[name] = t[t.numel() // 2 :]
    return out
