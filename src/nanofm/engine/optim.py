"""AdamW with weight decay only on weight matrices, layer-wise learning-rate decay for fine-tuning, and the
learning-rate schedule as a pure function of step."""

from __future__ import annotations

import math
import re

import torch
from torch import nn

from nanofm.config import ConfigError
from nanofm.engine.config import TrainConfig

_BLOCK = re.compile(r"^(.*?)\.?layers\.(\d+)\.")  # "encoder.layers.3.ff.fc1.weight" -> ("encoder", "3")


def layer_depths(model: nn.Module) -> tuple[dict[str, int], int]:
    """({parameter name: depth}, L) for a model with one stack of L blocks named `layers.N` (the core's
    Encoder): depth 0 below the first block (embeddings, [CLS], positions), N + 1 in block N, L + 1 above the
    last (final norm, head)."""
    names = [n for n, _ in model.named_parameters()]
    blocks = {n: _BLOCK.match(n) for n in names}
    stacks = {m.group(1) for m in blocks.values() if m}
    if len(stacks) != 1:
        raise ConfigError(f"train.layer_decay needs a model with one stack of blocks named `layers.N`; "
                          f"{type(model).__name__} has {len(stacks) or 'no'} ({', '.join(sorted(stacks)) or '-'})",
                          ("layer_decay",))
    n_layers = 1 + max(int(m.group(2)) for m in blocks.values() if m)
    depths, above = {}, False
    for n in names:
        m = blocks[n]
        above = above or m is not None
        depths[n] = int(m.group(2)) + 1 if m else (n_layers + 1 if above else 0)
    return depths, n_layers


def param_groups(model: nn.Module, weight_decay: float, layer_decay: float = 1.0) -> list[dict]:
    """Decay matrices (Linear, Conv, Embedding weights); never biases, norm scales or other 1-D parameters.
    With layer_decay < 1 (fine-tuning a pretrained encoder, as BEiT and MAE do), a parameter at depth d of
    L + 1 (see layer_depths) learns at lr * layer_decay ** (L + 1 - d): the head at the full rate, each block
    below at a smaller one, so that the pretrained features change less than the new head."""
    depths, n_layers = layer_depths(model) if layer_decay < 1 else ({}, 0)
    groups: dict[tuple[float, float], list[nn.Parameter]] = {(weight_decay, 1.0): [], (0.0, 1.0): []}
    seen = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:  # tied weights appear once
            continue
        seen.add(id(p))
        scale = layer_decay ** (n_layers + 1 - depths[name]) if depths else 1.0
        groups.setdefault((weight_decay if p.ndim >= 2 else 0.0, scale), []).append(p)
    return [{"params": ps, "weight_decay": wd, "lr_scale": scale} for (wd, scale), ps in groups.items()
            if ps or scale == 1.0]  # the two plain groups always, as checkpoints of runs without decay have them


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The schedule's learning rate (that of a group at full rate), whatever the layer decay."""
    g = optimizer.param_groups[0]
    return g["lr"] / g.get("lr_scale", 1.0)


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW, fused (one kernel for all parameters: 3x faster than foreach on the CPU, see bench/NOTES.md)
    where this PyTorch and the parameters' device support it, else foreach."""
    groups = param_groups(model, cfg.weight_decay, cfg.layer_decay)
    kwargs = dict(lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, ValueError):  # an older PyTorch, or a device without the fused kernel
        return torch.optim.AdamW(groups, foreach=True, **kwargs)


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step `step` (0-based): linear warm-up, then cosine / linear decay / constant."""
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "constant":
        return cfg.lr
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    shape = 0.5 * (1 + math.cos(math.pi * progress)) if cfg.schedule == "cosine" else 1 - progress
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * shape)
