"""BERT side by side with Hugging Face transformers, at identical configurations and identical work.

    python bench/bert.py [--quick] [--repeats 7] [--device cpu] [--dtype float32] [--sizes mini,small]
                         [--batch 32] [--seq 128] [--dropout 0.0] [--only NAME]

Cases:
  MLM train step   BertForMaskedLM (vocabulary 31,002, packed rows of `seq` tokens, 15% of the tokens masked,
                   the same tokens and targets on both sides): zero_grad, forward, backward, gradient
                   clipping, AdamW step. nanofm scores the head at the masked positions only;
                   transformers scores every position (its loss ignores the rest). Rate: tokens/s.
  encoder inference  BertForSequenceClassification forward under no_grad, on a padded batch
                   (lengths drawn in [seq/4, seq]): what fine-tuned classifiers run. Rate: tokens/s
                   (padding included).
Dropout defaults to 0.0, as configs/bert-mini-mlm-es.yaml pretrains (--dropout 0.1 for BERT's value).
Both sides use SDPA attention and the same AdamW (nanofm's build_optimizer: fused, decay on matrices only).
"""

from __future__ import annotations

import argparse

import torch
import transformers

from common import Case, autocast, main_for
from nanofm.engine import TrainConfig
from nanofm.engine.optim import build_optimizer
from nanofm.families.bert.masking import MaskingConfig, mask_words
from nanofm.families.bert.model import BertConfig, BertForMaskedLM, BertForSequenceClassification

SIZES = {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512), "base": (12, 768)}  # layers, width


def configs(size: str, vocab: int, seq: int, dropout: float, n_labels: int = 2):
    layers, d = SIZES[size]
    ours = BertConfig(vocab_size=vocab, d_model=d, n_layers=layers, n_heads=d // 64, d_ff=4 * d, max_len=max(seq, 128),
                      dropout=dropout, attn_dropout=dropout, n_labels=n_labels)
    ref = transformers.BertConfig(
        vocab_size=vocab, hidden_size=d, num_hidden_layers=layers, num_attention_heads=d // 64, intermediate_size=4 * d,
        max_position_embeddings=max(seq, 128), hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
        layer_norm_eps=1e-12, num_labels=n_labels, pad_token_id=0,
    )  # fmt: skip
    return ours, ref


def mlm_batch(batch: int, seq: int, vocab: int, device: torch.device, mask_prob: float = 0.15):
    """Full rows [CLS] w ... w [SEP] (as pack_documents makes them), 15% of the tokens masked (80/10/10)."""
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(5, vocab, (batch, seq), generator=g)
    tokens[:, 0], tokens[:, -1] = 2, 3
    word_ids = torch.arange(seq).expand(batch, seq).clone()
    word_ids[:, 0] = word_ids[:, -1] = -1
    torch.manual_seed(0)
    inputs, targets = mask_words(tokens, word_ids, vocab, cfg=MaskingConfig(mask_prob=mask_prob, whole_words=False))
    return inputs.to(device), targets.to(device)


def train_step(model, optimizer, forward, device, dtype):
    def step():
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = forward()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def mlm_case(size: str, args: argparse.Namespace) -> Case:
    batch, seq, vocab, dev, dt = args.batch, args.seq, args.vocab, args.device, args.dtype
    ours_cfg, ref_cfg = configs(size, vocab, seq, args.dropout)
    inputs, targets = mlm_batch(batch, seq, vocab, dev)
    ones = torch.ones_like(inputs)
    padding = torch.zeros_like(inputs, dtype=torch.bool)
    opt_cfg = TrainConfig(lr=1e-4)

    def make_ours():
        model = BertForMaskedLM(ours_cfg).to(dev).train()
        opt = build_optimizer(model, opt_cfg)
        return train_step(model, opt, lambda: model(inputs, targets=targets, padding_mask=padding).loss, dev, dt)

    def make_ref():
        model = transformers.BertForMaskedLM._from_config(ref_cfg, attn_implementation="sdpa").to(dev).train()
        opt = build_optimizer(model, opt_cfg)  # the same AdamW as nanofm's
        return train_step(model, opt, lambda: model(input_ids=inputs, attention_mask=ones, labels=targets).loss, dev, dt)

    return Case(f"BERT-{size} MLM train step (B={batch}, T={seq})", "tokens/s", batch * seq, make_ours, make_ref,
                "transformers BertForMaskedLM (sdpa)")


def classify_case(size: str, args: argparse.Namespace) -> Case:
    batch, seq, vocab, dev, dt = args.batch, args.seq, args.vocab, args.device, args.dtype
    ours_cfg, ref_cfg = configs(size, vocab, seq, args.dropout, n_labels=3)
    g = torch.Generator().manual_seed(1)
    lengths = torch.randint(seq // 4, seq + 1, (batch,), generator=g)
    lengths[0] = seq
    keep = torch.arange(seq)[None, :] < lengths[:, None]  # (B, T)
    tokens = torch.randint(5, vocab, (batch, seq), generator=g).masked_fill(~keep, 0).to(dev)
    keep = keep.to(dev)

    def inference(model, forward):
        model.to(dev).eval()

        def call():
            with torch.no_grad(), autocast(dev, dt):
                return forward(model)

        return call

    def make_ours():
        return inference(BertForSequenceClassification(ours_cfg), lambda m: m(tokens, padding_mask=~keep).logits)

    def make_ref():
        model = transformers.BertForSequenceClassification._from_config(ref_cfg, attn_implementation="sdpa")
        return inference(model, lambda m: m(input_ids=tokens, attention_mask=keep.long()).logits)

    return Case(f"BERT-{size} encoder inference, classification (B={batch}, T<={seq}, padded)", "tokens/s", batch * seq,
                make_ours, make_ref, "transformers BertForSequenceClassification (sdpa)", training=False)


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sizes", default="mini,small", help="MLM training sizes: " + ", ".join(SIZES))
    p.add_argument("--classify-size", default="small", help="size of the inference case (none: skip it)")
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--seq", type=int, default=None)
    p.add_argument("--vocab", type=int, default=None)
    p.add_argument("--dropout", type=float, default=0.0)


def cases(args: argparse.Namespace) -> list[Case]:
    if args.quick:
        args.batch, args.seq, args.vocab = args.batch or 4, args.seq or 32, args.vocab or 1000
        sizes, classify = ["tiny"], "tiny"
    else:
        args.batch, args.seq, args.vocab = args.batch or 32, args.seq or 128, args.vocab or 31002
        sizes, classify = args.sizes.split(","), args.classify_size
    return [mlm_case(s, args) for s in sizes] + ([classify_case(classify, args)] if args.classify_size != "none" else [])


if __name__ == "__main__":
    main_for(cases, __doc__.splitlines()[0], add_args)
