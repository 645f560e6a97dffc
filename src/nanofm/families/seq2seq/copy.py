"""The copy task: an encoder-decoder learns to reproduce random token sequences.

The smallest end-to-end check of the core: it needs cross-attention, causal decoding and positions,
and a correct model solves it exactly (100% held-out token accuracy) within a few hundred steps on a
CPU. Held-out sequences are a fixed 1-in-8 split of all sequences by a hash of their content, which
training never sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from nanofm.config import require, require_fits
from nanofm.core.output import IGNORE_INDEX
from nanofm.data import PadCollate
from nanofm.engine import TrainConfig
from nanofm.engine.task import TaskParts
from nanofm.families.seq2seq.transformer import EncoderDecoder, EncoderDecoderConfig
from nanofm.registry import get_config


@dataclass
class CopyDataConfig:
    min_len: int = 4  # shortest random sequence (content tokens, EOS excluded)
    max_len: int = 12  # longest random sequence
    train_size: int = 25600  # training sequences in an epoch
    eval_size: int = 500  # held-out sequences
    seed: int = 0  # the sequences are a pure function of (seed, index)

    def __post_init__(self):
        require(1 <= self.min_len <= self.max_len, f"need 1 <= min_len <= max_len, got {self.min_len}, {self.max_len}",
                "min_len", "max_len")


@dataclass
class CopyTaskConfig:
    task: Literal["copy"] = "copy"  # which task this config is for
    model: EncoderDecoderConfig = field(default_factory=lambda: get_config("transformer-tiny"))  # the model
    data: CopyDataConfig = field(default_factory=CopyDataConfig)  # the random sequences
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(
            steps=400, batch_size=64, lr=3e-3, warmup_steps=30, eval_every=100,
            best_metric="eval/token_accuracy", best_mode="max",
        )
    )  # the training run

    def __post_init__(self):
        require_fits(self, "data.max_len", specials=1)  # source + EOS, BOS + target
        require(self.model.vocab_size > 4, "model.vocab_size must leave room for content tokens beyond PAD, BOS, EOS",
                "model.vocab_size")


def is_held_out(seq: Tensor) -> bool:
    """A fixed 1-in-8 split of all sequences by a hash of their content: training never sees these."""
    weights = torch.arange(1, len(seq) + 1) * 7919
    return int((seq * weights).sum() + len(seq)) % 8 == 0


class CopyDataset(torch.utils.data.Dataset):
    """Example i: {src: x + EOS, tgt: BOS + x, targets: x + EOS}, x random, a pure function of (seed, i)."""

    def __init__(self, data: CopyDataConfig, model: EncoderDecoderConfig, size: int, held_out: bool = False):
        self.data, self.model, self.size, self.held_out = data, model, size, held_out

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        if not 0 <= i < self.size:
            raise IndexError(i)
        m, d = self.model, self.data
        gen = torch.Generator().manual_seed((d.seed * 2 + self.held_out) * 10_000_019 + i)
        specials = max(m.pad_id, m.bos_id, m.eos_id) + 1
        while True:
            length = int(torch.randint(d.min_len, d.max_len + 1, (), generator=gen))
            seq = torch.randint(specials, m.vocab_size, (length,), generator=gen)
            if is_held_out(seq) == self.held_out:
                break
        eos, bos = torch.tensor([m.eos_id]), torch.tensor([m.bos_id])
        return {"src": torch.cat([seq, eos]), "tgt": torch.cat([bos, seq]), "targets": torch.cat([seq, eos])}


def collate_for(model: EncoderDecoderConfig) -> PadCollate:
    return PadCollate({"src": model.pad_id, "tgt": model.pad_id, "targets": IGNORE_INDEX})


@torch.no_grad()
def greedy_outputs(model: EncoderDecoder, batch: dict[str, Tensor]) -> Tensor:
    """Greedy-decode the batch's sources, padded to the targets' length: (B, T)."""
    targets = batch["targets"]
    out = model.generate(batch["src"], max_new_tokens=targets.size(1))
    return torch.nn.functional.pad(out, (0, targets.size(1) - out.size(1)), value=model.cfg.pad_id)


@torch.no_grad()
def copy_accuracy(model: EncoderDecoder, data, batch_size: int = 250) -> dict[str, float]:
    """Greedy decoding over `data`: token accuracy (EOS included) and whole-sequence accuracy."""
    model.eval()
    collate = collate_for(model.cfg)
    device = next(model.parameters()).device
    right = real = exact = 0
    for start in range(0, len(data), batch_size):
        batch = collate([data[i] for i in range(start, min(start + batch_size, len(data)))])
        batch = {k: v.to(device) for k, v in batch.items()}
        out, targets = greedy_outputs(model, batch), batch["targets"]
        mask = targets != IGNORE_INDEX
        ok = (out == targets) & mask
        right, real = right + int(ok.sum()), real + int(mask.sum())
        exact += int((ok.sum(1) == mask.sum(1)).sum())
    return {"token_accuracy": right / real, "sequence_accuracy": exact / len(data)}


def _content(tokens: list[int], cfg: EncoderDecoderConfig) -> str:
    out = []
    for t in tokens:
        if t in (cfg.eos_id, cfg.pad_id):
            break
        out.append(str(t))
    return " ".join(out)


def report(model: EncoderDecoder, eval_data, metrics: dict[str, float]) -> str:
    """The accuracy line and three held-out examples, source -> greedy output."""
    lines = [
        f"held-out accuracy on {len(eval_data)} sequences (greedy decoding): "
        f"tokens {100 * metrics['eval/token_accuracy']:.2f}%, whole sequences {100 * metrics['eval/sequence_accuracy']:.2f}%"
    ]
    batch = collate_for(model.cfg)([eval_data[i] for i in range(min(3, len(eval_data)))])
    device = next(model.parameters()).device
    outs = greedy_outputs(model.eval(), {k: v.to(device) for k, v in batch.items()})
    for src, out in zip(batch["src"].tolist(), outs.tolist()):
        a, b = _content(src, model.cfg), _content(out, model.cfg)
        lines.append(f"  {a}  ->  {b}  [{'ok' if a == b else 'WRONG'}]")
    return "\n".join(lines)


def build(cfg: CopyTaskConfig) -> TaskParts:
    torch.manual_seed(cfg.train.seed)
    model = EncoderDecoder(cfg.model)
    return TaskParts(
        model=model,
        train_data=CopyDataset(cfg.data, cfg.model, cfg.data.train_size),
        eval_data=CopyDataset(cfg.data, cfg.model, cfg.data.eval_size, held_out=True),
        collate=collate_for(cfg.model),
        compute_metrics=copy_accuracy,
        report=report,
        describe=(
            f"copy task: encoder-decoder, sequences of {cfg.data.min_len}-{cfg.data.max_len} tokens over "
            f"{cfg.model.vocab_size - 3} symbols"
        ),
        config=cfg,
    )
