"""TrainConfig: everything the model-agnostic Trainer needs to know, and nothing about the model."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Literal

from nanofm.config import ConfigError, require


@dataclass
class TrainConfig:
    steps: int = 1000  # optimizer steps (replaced by what fits when `budget` is set)
    budget: str | None = None  # wall-clock budget like "20m", "90s", "1h30m": the schedule ends when it is spent
    epochs: float | None = None  # passes over the training data; replaces `steps` (ceil(epochs * examples / batch))
    batch_size: int = 64  # examples per optimizer step, over all processes and micro-batches
    micro_batch_size: int | None = None  # examples per forward pass per process; None = batch_size / world size
    group_by_length: bool = False  # batch examples of similar length together (less padding; needs data with .lengths)
    lr: float = 1e-3  # peak learning rate
    min_lr_ratio: float = 0.0  # the decay ends at lr * min_lr_ratio
    warmup_steps: int = 100  # linear warm-up from 0 to lr; longer than the run: cut to its length (the Trainer says so)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # decay after warm-up
    weight_decay: float = 0.01  # AdamW decay; never applied to biases, norms or embeddings' padding
    layer_decay: float = 1.0  # fine-tuning: block N of L learns at lr * layer_decay ** (L - N), the embeddings at
    # lr * layer_decay ** (L + 1), the head at lr (BEiT, MAE: 0.65-0.75); 1: one rate for all (engine/optim.py)
    betas: tuple[float, float] = (0.9, 0.999)  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 disables
    eval_every: int = 0  # evaluate every N steps (0: only at the end)
    save_every: int = 0  # checkpoint every N steps (0: only at the end)
    keep_last: int = 2  # complete checkpoints kept (the best one is always kept too)
    best_metric: str | None = "eval/loss"  # metric that picks the best checkpoint; None disables
    best_mode: Literal["min", "max"] = "min"  # whether lower or higher best_metric is better
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    max_bad_steps: int = 5  # stop after this many consecutive steps with a non-finite loss or gradient
    log_every: int = 10  # steps between progress-bar and metrics-file updates
    seed: int = 0  # data order, dropout and initialisation
    device: str = "auto"  # auto (CUDA when available: the LOCAL_RANK-th GPU, else CPU), cpu, cuda, cuda:N or mps
    parallel: Literal["ddp", "fsdp"] = "ddp"  # under torchrun: ddp (a whole copy of the model per process) or fsdp
    # (weights, gradients and optimizer state sharded over the processes, engine/fsdp.py: models too big for one device)
    compile: bool = False  # torch.compile the training forward (the first step pays the compilation; see bench/NOTES.md)
    prefetch: int | None = None  # micro-batches collated ahead in a background thread (pinned on CUDA); None: 2 on CUDA, 0 on CPU

    def __post_init__(self):
        for name, (ok, what) in _RULES.items():
            value = getattr(self, name)
            require(value is None or ok(value), f"{name} must be {what}, got {value!r}", name)  # None: the optional ones
        if self.micro_batch_size is not None:
            require(self.batch_size % self.micro_batch_size == 0,
                    f"batch_size={self.batch_size} must be a multiple of micro_batch_size={self.micro_batch_size}",
                    "batch_size", "micro_batch_size")
        require(self.epochs is None or self.budget is None,
                "epochs cannot be combined with budget (set one of the two to null)", "epochs", "budget")
        if self.budget is not None:
            try:
                parse_duration(self.budget)
            except ConfigError as e:
                raise ConfigError(f"budget: {e}", ("budget",)) from None
        require(bool(_DEVICE.match(self.device)), f"device must be auto, cpu, cuda, cuda:N or mps, got {self.device!r}",
                "device")

    def steps_for(self, n_examples: int) -> int:
        """Optimizer steps of the run: `steps`, or what `epochs` passes over n_examples take."""
        return self.steps if self.epochs is None else max(1, math.ceil(self.epochs * n_examples / self.batch_size))

    def budget_seconds(self) -> float | None:
        return None if self.budget is None else parse_duration(self.budget)


def _finite(low: float, strict: bool) -> Callable[[Any], bool]:
    return lambda v: (v > low if strict else v >= low) and math.isfinite(v)


_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {  # field: (test, what the value must be)
    **dict.fromkeys(("steps", "batch_size", "log_every", "keep_last", "max_bad_steps", "micro_batch_size"),
                    (lambda v: v >= 1, "at least 1")),
    **dict.fromkeys(("warmup_steps", "eval_every", "save_every", "prefetch"), (lambda v: v >= 0, "at least 0")),
    "epochs": (_finite(0, strict=True), "a finite number > 0"),
    "lr": (_finite(0, strict=True), "a finite number > 0"),
    "min_lr_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "weight_decay": (_finite(0, strict=False), "a finite number >= 0"),
    "layer_decay": (lambda v: 0 < v <= 1, "in (0, 1] (1: no layer-wise decay)"),
    "betas": (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "eps": (_finite(0, strict=True), "a finite number > 0"),
    "grad_clip": (_finite(0, strict=False), "a finite number >= 0 (0: no clipping)"),
}
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$")


def format_duration(seconds: float) -> str:
    """A budget parse_duration reads back: 900 -> "15m", 65.5 -> "66s" (at least "1s")."""
    return f"{seconds / 60:g}m" if seconds >= 60 and seconds % 60 == 0 else f"{max(1, round(seconds))}s"


def parse_duration(text: str) -> float:
    """'20m' -> 1200.0; also '90s', '1h30m', '1.5h'. Every number needs its unit: a bare '30' is refused."""
    m = _DURATION.match(str(text))
    if not m or not any(m.groups()):
        n = str(text).strip()
        hint = f"give it a unit, like {n}s or {n}m" if re.fullmatch(r"\d+(\.\d+)?", n) else "write it like 90s, 20m or 1h30m"
        raise ConfigError(f"cannot read duration {text!r}: {hint}")
    h, mins, s = (float(g) if g else 0.0 for g in m.groups())
    seconds = 3600 * h + 60 * mins + s
    if seconds <= 0:
        raise ConfigError(f"duration {text!r} must be positive")
    return seconds
