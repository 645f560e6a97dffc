"""Each speed feature of nanofm measured against the plain path it replaces (bench/NOTES.md keeps the figures).

    python bench/ablations.py [--quick] [--repeats 5] [--size mini] [--batch 32] [--compile] [--only NAME]

On a BERT MLM training step (B=32, T=128, vocabulary 31,002, no dropout; --quick: tiny), the fast path
("nanofm") against the plain one ("reference"), alternated, medians:
  SDPA attention        vs the explicit softmax(q k^T) v path (the one that returns weights)
  fused QKV projection  vs three projections (q, k, v Linear layers, concatenated)
  MLM head at masked positions vs the head at every position, loss over the masked ones
  packed rows           vs one document per row, padded (random order, then length-grouped batches):
                        the same documents, rate in real tokens/s, one optimizer step per batch
  torch.compile         (--compile) vs eager; compile time printed
and the cost of building a batch (MLMCollator: padding + whole-word masking) against the step.
"""

from __future__ import annotations

import argparse
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

import nanofm.core.attention as attention
from bert import configs, mlm_batch, train_step
from common import Case, table
from nanofm.core import MultiHeadAttention
from nanofm.core.output import IGNORE_INDEX
from nanofm.engine import TrainConfig
from nanofm.engine.optim import build_optimizer
from nanofm.families.bert.masking import MLMCollator
from nanofm.families.bert.model import BertForMaskedLM

OPT = TrainConfig(lr=1e-4)


def mlm_docs(n_tokens: int, max_len: int, vocab: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Documents [CLS] w ... w [SEP] with about n_tokens tokens in all, lengths log-normal around max_len / 3
    (clipped to [8, max_len]): like sentences and short paragraphs, most shorter than a block."""
    g = torch.Generator().manual_seed(seed)
    docs, total = [], 0
    while total < n_tokens:
        n = int(torch.empty(1).log_normal_(mean=0.0, std=0.6, generator=g).item() * max_len / 3)
        n = max(8, min(max_len, n))
        tokens = torch.randint(5, vocab, (n,), generator=g)
        tokens[0], tokens[-1] = 2, 3
        word_ids = torch.arange(n)
        word_ids[0] = word_ids[-1] = -1
        docs.append({"tokens": tokens, "word_ids": word_ids})
        total += n
    return docs


@contextmanager
def explicit_attention():
    """Every attention call through the explicit path (scores materialised, softmax, weights returned)."""
    fused = attention.scaled_dot_product_attention

    def explicit(q, k, v, attn_mask=None, is_causal=False, dropout_p=0.0, need_weights=False):
        return fused(q, k, v, attn_mask, is_causal, dropout_p, need_weights=True)

    attention.scaled_dot_product_attention = explicit
    try:
        yield
    finally:
        attention.scaled_dot_product_attention = fused


class SeparateQKV(nn.Module):
    """The plain path: q, k and v by three Linear layers (the fused layer's weights), concatenated."""

    def __init__(self, fused: nn.Linear):
        super().__init__()
        d_in, d = fused.in_features, fused.out_features // 3
        self.q, self.k, self.v = (nn.Linear(d_in, d) for _ in range(3))
        with torch.no_grad():
            for i, lin in enumerate((self.q, self.k, self.v)):
                lin.weight.copy_(fused.weight[i * d : (i + 1) * d]), lin.bias.copy_(fused.bias[i * d : (i + 1) * d])

    def forward(self, x):
        return torch.cat([self.q(x), self.k(x), self.v(x)], dim=-1)


def separate_qkv(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, MultiHeadAttention) and not m.cross:
            m.qkv_proj = SeparateQKV(m.qkv_proj)
    return model


def full_head_loss(model: BertForMaskedLM, tokens, targets, padding):
    """The plain path: the head at every position, cross-entropy over the masked ones."""
    logits = model.mlm_head(model.bert(tokens, padding_mask=padding))  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE_INDEX)


def cases(args: argparse.Namespace) -> list[Case]:
    size, batch, seq, vocab = ("tiny", 4, 32, 1000) if args.quick else (args.size, args.batch, 128, 31002)
    dev, dt = args.device, args.dtype
    cfg, _ = configs(size, vocab, seq, 0.0)
    tokens, targets = mlm_batch(batch, seq, vocab, dev)
    padding = torch.zeros_like(tokens, dtype=torch.bool)
    tag = f"BERT-{size} MLM step"

    def step(model=None, loss=None, context=None):
        def make():
            m = model() if model else BertForMaskedLM(cfg).to(dev).train()
            forward = loss or (lambda: m(tokens, targets=targets, padding_mask=padding).loss)
            fn = train_step(m, build_optimizer(m, OPT), forward, dev, dt)
            if context is None:
                return fn

            def in_context():
                with context():
                    fn()

            return in_context

        return make

    def full_head():
        m = BertForMaskedLM(cfg).to(dev).train()
        fn = train_step(m, build_optimizer(m, OPT), lambda: full_head_loss(m, tokens, targets, padding), dev, dt)
        return fn

    out = [
        Case(f"{tag}: SDPA vs explicit attention", "tokens/s", batch * seq, step(), step(context=explicit_attention),
             "explicit attention path"),
        Case(f"{tag}: fused QKV vs three projections", "tokens/s", batch * seq, step(),
             step(model=lambda: separate_qkv(BertForMaskedLM(cfg)).to(dev).train()), "q, k, v projections"),
        Case(f"{tag}: head at masked positions vs every position", "tokens/s", batch * seq, step(), full_head,
             "MLM head at every position"),
    ]
    out += packing_cases(cfg, batch, seq, vocab, dev, dt, size, args.quick)
    if args.compile:
        out.append(compile_case(cfg, tokens, targets, padding, dev, dt, tag))
    return out


def packing_cases(cfg, batch, seq, vocab, dev, dt, size, quick) -> list[Case]:
    """The same documents as packed rows vs one per row (random order; length-grouped)."""
    docs = mlm_docs(batch * seq, seq, vocab)  # token lists of natural lengths, each [CLS] ... [SEP]
    collate = MLMCollator(vocab, seed=0)

    def batches_of(groups):
        return [{k: v.to(dev) for k, v in collate(g).items()} for g in groups]

    packed_tokens = torch.cat([d["tokens"][1:-1] for d in docs])
    packed = [{"tokens": torch.cat([torch.tensor([2]), packed_tokens[i : i + seq - 2], torch.tensor([3])]),
               "word_ids": torch.arange(seq)} for i in range(0, len(packed_tokens) - seq + 2, seq - 2)]
    packed = batches_of([packed[i : i + batch] for i in range(0, len(packed), batch)])
    padded = batches_of([docs[i : i + batch] for i in range(0, len(docs), batch)])
    by_len = sorted(docs, key=lambda d: len(d["tokens"]))
    grouped = batches_of([by_len[i : i + batch] for i in range(0, len(by_len), batch)])
    real = int(sum(len(d["tokens"]) for d in docs))

    def run(batches):
        def make():
            m = BertForMaskedLM(cfg).to(dev).train()
            opt = build_optimizer(m, OPT)
            steps = [train_step(m, opt, lambda b=b: m(**b).loss, dev, dt) for b in batches]
            return lambda: [s() for s in steps]

        return make

    fill = real / sum(b["tokens"].numel() for b in padded)
    fill_g = real / sum(b["tokens"].numel() for b in grouped)
    tag = f"BERT-{size}, {len(docs)} documents"
    return [
        Case(f"{tag}: packed rows vs padded ({100 * fill:.0f}% real tokens)", "tokens/s", real, run(packed), run(padded),
             f"one document per row, {len(padded)} batches"),
        Case(f"{tag}: packed rows vs length-grouped ({100 * fill_g:.0f}% real)", "tokens/s", real, run(packed), run(grouped),
             f"length-grouped batches, {len(grouped)} batches"),
    ]


def compile_case(cfg, tokens, targets, padding, dev, dt, tag) -> Case:
    compile_s = {}

    def make_compiled():
        m = BertForMaskedLM(cfg).to(dev).train()
        fwd = torch.compile(m)
        fn = train_step(m, build_optimizer(m, OPT), lambda: fwd(tokens, targets=targets, padding_mask=padding).loss, dev, dt)
        t = time.perf_counter()
        fn()
        compile_s["s"] = time.perf_counter() - t
        print(f"# torch.compile: first step {compile_s['s']:.1f} s (compilation included)", flush=True)
        return fn

    def make_eager():
        m = BertForMaskedLM(cfg).to(dev).train()
        return train_step(m, build_optimizer(m, OPT), lambda: m(tokens, targets=targets, padding_mask=padding).loss, dev, dt)

    return Case(f"{tag}: torch.compile vs eager", "tokens/s", tokens.numel(), make_compiled, make_eager, "eager")


def collate_cost(args) -> None:
    seq, vocab, batch = (32, 1000, 4) if args.quick else (128, 31002, 32)
    docs = mlm_docs(batch * seq, seq, vocab)[:batch]
    collate = MLMCollator(vocab)
    t = time.perf_counter()
    for _ in range(20):
        collate(docs)
    per = (time.perf_counter() - t) / 20
    print(f"# building one batch of {batch} (MLMCollator: padding, whole-word masking): {per * 1e3:.2f} ms", flush=True)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--size", default="mini")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--compile", action="store_true", help="also torch.compile vs eager (compilation takes minutes)")


if __name__ == "__main__":
    from common import parse_args, recorded, run_cases

    args = parse_args(__doc__.splitlines()[0], add_args)
    with recorded():
        collate_cost(args)
        print(table(run_cases(cases(args), args)))
