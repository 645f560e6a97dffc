"""The translation Transformer side by side with torch.nn.Transformer at the same size.

    python bench/translation.py [--quick] [--repeats 7] [--device cpu] [--batch 64]

nanofm's EncoderDecoder as configs/translate-transformer-es-en.yaml trains it (width 256, 4 heads, 3+3
pre-norm layers, feed-forward 1024, ReLU, no dropout, shared and tied 8,000-token embeddings, label
smoothing 0.1) against the same model written around torch.nn.Transformer (norm_first=True: it also ends
each stack with a LayerNorm): the same embeddings scaled by sqrt(D), sinusoidal positions, tied output
projection and loss. Batch: sentence pairs of 8-48 tokens, right-padded; a training step is zero_grad,
forward, backward, clipping, AdamW. Rate: real target tokens/s.
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn

from bert import train_step
from common import Case, main_for
from nanofm.core import sinusoidal_table
from nanofm.core.output import IGNORE_INDEX
from nanofm.engine import TrainConfig
from nanofm.engine.optim import build_optimizer
from nanofm.families.seq2seq.transformer import EncoderDecoder, EncoderDecoderConfig


class TorchTranslator(nn.Module):
    """The reference: torch.nn.Transformer with the same embeddings, positions, output projection and loss."""

    def __init__(self, cfg: EncoderDecoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_id)
        self.register_buffer("pos", sinusoidal_table(cfg.max_len, cfg.d_model), persistent=False)
        self.transformer = nn.Transformer(
            cfg.d_model, cfg.n_heads, cfg.n_encoder_layers, cfg.n_decoder_layers, cfg.d_ff, cfg.dropout,
            activation=cfg.act, batch_first=True, norm_first=cfg.norm_first,
        )  # fmt: skip
        self.out = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.out.weight = self.embed.weight

    def _embed(self, tokens):
        return self.embed(tokens) * math.sqrt(self.cfg.d_model) + self.pos[: tokens.size(1)]

    def forward(self, src, tgt, targets):
        src_pad, tgt_pad = src == self.cfg.pad_id, tgt == self.cfg.pad_id
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.size(1), device=tgt.device)
        h = self.transformer(
            self._embed(src), self._embed(tgt), tgt_mask=causal, src_key_padding_mask=src_pad,
            tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=src_pad, tgt_is_causal=True,
        )  # fmt: skip
        logits = self.out(h)
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX,
                               label_smoothing=self.cfg.label_smoothing)


def translation_batch(batch: int, vocab: int, lo: int, hi: int, device):
    g = torch.Generator().manual_seed(0)

    def padded(lengths):
        x = torch.randint(3, vocab, (batch, int(lengths.max())), generator=g)
        return x.masked_fill(torch.arange(x.size(1))[None] >= lengths[:, None], 0)

    src = padded(torch.randint(lo, hi + 1, (batch,), generator=g))
    full = padded(torch.randint(lo, hi + 1, (batch,), generator=g) + 1)  # BOS + target + EOS
    full[:, 0] = 1
    tgt, targets = full[:, :-1], full[:, 1:].masked_fill(full[:, 1:] == 0, IGNORE_INDEX)
    return src.to(device), tgt.to(device), targets.to(device)


def cases(args: argparse.Namespace) -> list[Case]:
    dev, dt = args.device, args.dtype
    if args.quick:
        cfg = EncoderDecoderConfig(vocab_size=200, d_model=32, n_heads=4, n_encoder_layers=1, n_decoder_layers=1, d_ff=64,
                                   dropout=0.0, norm_first=True, max_len=64, label_smoothing=0.1)
        batch, lo, hi = 4, 4, 12
    else:
        cfg = EncoderDecoderConfig(vocab_size=8000, d_model=256, n_heads=4, n_encoder_layers=3, n_decoder_layers=3,
                                   d_ff=1024, dropout=0.0, act="relu", norm_first=True, max_len=160, label_smoothing=0.1)
        batch, lo, hi = args.batch, 8, 48
    src, tgt, targets = translation_batch(batch, cfg.vocab_size, lo, hi, dev)
    opt_cfg = TrainConfig(lr=1e-4)

    def make_ours():
        model = EncoderDecoder(cfg).to(dev).train()
        return train_step(model, build_optimizer(model, opt_cfg), lambda: model(src, tgt, targets).loss, dev, dt)

    def make_ref():
        model = TorchTranslator(cfg).to(dev).train()
        return train_step(model, build_optimizer(model, opt_cfg), lambda: model(src, tgt, targets), dev, dt)

    n_tokens = int((targets != IGNORE_INDEX).sum())
    name = f"translation train step (width {cfg.d_model}, {cfg.n_encoder_layers}+{cfg.n_decoder_layers} layers, B={batch})"
    return [Case(name, "tokens/s", n_tokens, make_ours, make_ref, "torch.nn.Transformer, same embeddings and loss")]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=64)


if __name__ == "__main__":
    main_for(cases, __doc__.splitlines()[0], add_args)
