"""The copy task: an encoder-decoder learns to reproduce random token sequences.

The smallest end-to-end check of the core: it needs attention across sequences (cross-attention),
causal decoding and positions, and it is solved exactly (100% held-out token accuracy) by a correct
model within a few hundred steps on a CPU.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor
from tqdm.auto import tqdm

from nanofm.data import pad_sequences
from nanofm.models import IGNORE_INDEX, EncoderDecoder, EncoderDecoderConfig
from nanofm.registry import get_config


@dataclass
class CopyTaskConfig:
    model: EncoderDecoderConfig = field(default_factory=lambda: get_config("transformer-tiny"))  # the model
    min_len: int = 4  # shortest random sequence (content tokens, EOS excluded)
    max_len: int = 12  # longest random sequence
    steps: int = 400  # optimizer steps
    batch_size: int = 64  # sequences per step
    lr: float = 3e-3  # peak AdamW learning rate
    warmup_steps: int = 30  # linear warm-up, then cosine decay to 0
    weight_decay: float = 0.01  # AdamW weight decay
    eval_size: int = 500  # held-out sequences: a split by content hash that training never sees
    seed: int = 0  # training data, initialisation and held-out seeds derive from it

    def __post_init__(self):
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}")
        if self.max_len + 1 > self.model.max_len:
            raise ValueError(f"max_len={self.max_len} + EOS exceeds model.max_len={self.model.max_len}")
        if self.model.vocab_size <= 4:
            raise ValueError("model.vocab_size must leave room for content tokens beyond PAD, BOS, EOS")


@dataclass
class CopyResult:
    token_accuracy: float  # held-out target tokens (EOS included) predicted right by greedy decoding
    sequence_accuracy: float  # held-out sequences copied exactly
    final_loss: float
    steps: int
    seconds: float
    samples: list[tuple[list[int], list[int]]]  # a few held-out (source, output) token lists, EOS stripped


def is_held_out(seq: Tensor) -> bool:
    """A fixed 1-in-8 split of all sequences by a hash of their content: training never sees these."""
    weights = torch.arange(1, len(seq) + 1) * 7919
    return int((seq * weights).sum() + len(seq)) % 8 == 0


def make_batch(cfg: CopyTaskConfig, n: int, gen: torch.Generator, held_out: bool = False) -> dict[str, Tensor]:
    """n random sequences from the training or held-out split -> {src (B, S), tgt (B, T), targets (B, T)}:
    src = x + EOS, tgt = BOS + x, targets = x + EOS (IGNORE_INDEX at padding)."""
    m = cfg.model
    specials = max(m.pad_id, m.bos_id, m.eos_id) + 1
    seqs: list[Tensor] = []
    while len(seqs) < n:
        length = int(torch.randint(cfg.min_len, cfg.max_len + 1, (), generator=gen))
        seq = torch.randint(specials, m.vocab_size, (length,), generator=gen)
        if is_held_out(seq) == held_out:
            seqs.append(seq)
    eos, bos = torch.tensor([m.eos_id]), torch.tensor([m.bos_id])
    return {
        "src": pad_sequences([torch.cat([s, eos]) for s in seqs], m.pad_id),
        "tgt": pad_sequences([torch.cat([bos, s]) for s in seqs], m.pad_id),
        "targets": pad_sequences([torch.cat([s, eos]) for s in seqs], IGNORE_INDEX),
    }


@torch.no_grad()
def evaluate(model: EncoderDecoder, batch: dict[str, Tensor]) -> tuple[float, float, Tensor]:
    """Greedy-decode the sources; (token accuracy, sequence accuracy, outputs (B, T)) against the targets."""
    model.eval()
    targets = batch["targets"]
    out = model.generate(batch["src"], max_new_tokens=targets.size(1))
    out = torch.nn.functional.pad(out, (0, targets.size(1) - out.size(1)), value=model.cfg.pad_id)
    real = targets != IGNORE_INDEX
    right = (out == targets) & real
    return (right.sum() / real.sum()).item(), (right.sum(1) == real.sum(1)).float().mean().item(), out


def build_model(cfg: CopyTaskConfig) -> EncoderDecoder:
    torch.manual_seed(cfg.seed)
    return EncoderDecoder(cfg.model)


def train_copy(cfg: CopyTaskConfig, model: EncoderDecoder | None = None, progress: bool = True) -> CopyResult:
    model = model if model is not None else build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def lr_factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        return 0.5 * (1 + math.cos(math.pi * (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    train_gen = torch.Generator().manual_seed(cfg.seed)
    held_out = make_batch(cfg, cfg.eval_size, torch.Generator().manual_seed(cfg.seed + 1), held_out=True)
    start = time.perf_counter()
    bar = tqdm(range(cfg.steps), desc="copy task", disable=not progress, dynamic_ncols=True)
    loss = torch.tensor(float("nan"))
    for step in bar:
        model.train()
        loss = model(**make_batch(cfg, cfg.batch_size, train_gen)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{sched.get_last_lr()[0]:.2e}")
    token_acc, seq_acc, outputs = evaluate(model, held_out)
    samples = [(_content(s, cfg), _content(o, cfg)) for s, o in zip(held_out["src"][:3], outputs[:3])]
    return CopyResult(token_acc, seq_acc, loss.item(), cfg.steps, time.perf_counter() - start, samples)


def _content(tokens: Tensor, cfg: CopyTaskConfig) -> list[int]:
    """Token ids up to the first EOS (or PAD)."""
    out = []
    for t in tokens.tolist():
        if t in (cfg.model.eos_id, cfg.model.pad_id):
            break
        out.append(t)
    return out
