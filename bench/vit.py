"""ViT side by side with Hugging Face transformers' ViTForImageClassification, identical configurations.

    python bench/vit.py [--quick] [--repeats 7] [--device cpu] [--dtype float32] [--batch 128] [--image 32]
                        [--size small] [--compile none|ours|both] [--only NAME]

Images `image` x `image` RGB, patch 4, width 192, 6 layers, 3 heads, feed-forward 768, [CLS] pooling, 10
classes, no dropout (--size base: width 768, 12 layers, 12 heads, the GPU run). Cases: a training step
(zero_grad, forward, cross-entropy, backward, clipping, AdamW step) and inference (forward under
no_grad). Rate: images/s.
--compile ours: torch.compile the nanofm model's training forward (as train.compile does); both: the
reference's too. The first step's time, compilation included, is printed; the table times later steps.
"""

from __future__ import annotations

import argparse
import time

import torch
import transformers

from bert import train_step
from common import Case, autocast, main_for
from nanofm.engine import TrainConfig
from nanofm.engine.optim import build_optimizer
from nanofm.families.vit.vit import ViT, ViTConfig

SIZES = {"debug": (2, 32, 2), "small": (6, 192, 3), "base": (12, 768, 12)}  # layers, width, heads


def configs(size: str, image: int, patch: int = 4):
    layers, d, heads = SIZES[size]
    ours = ViTConfig(image_size=image, patch_size=patch, in_channels=3, d_model=d, n_layers=layers, n_heads=heads,
                     d_ff=4 * d, n_classes=10, norm_eps=1e-6)
    ref = transformers.ViTConfig(
        image_size=image, patch_size=patch, num_channels=3, hidden_size=d, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * d, num_labels=10, layer_norm_eps=1e-6,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return ours, ref


def cases(args: argparse.Namespace) -> list[Case]:
    size, batch, image = ("debug", 8, 16) if args.quick else (args.size, args.batch, args.image)
    dev, dt = args.device, args.dtype
    ours_cfg, ref_cfg = configs(size, image)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, image, image, generator=g).to(dev)
    labels = torch.randint(0, 10, (batch,), generator=g).to(dev)
    opt_cfg = TrainConfig(lr=1e-4)

    def ref_model():
        return transformers.ViTForImageClassification._from_config(ref_cfg, attn_implementation="sdpa").to(dev)

    def compiled(model, fn, side):
        """torch.compile the training forward of `model` (fn(forward) -> step) when --compile asks for it."""
        if args.compile == "none" or (args.compile == "ours" and side == "reference"):
            return fn(model)
        step = fn(torch.compile(model))
        t = time.perf_counter()
        step()
        print(f"# torch.compile ({side}): first step {time.perf_counter() - t:.1f} s (compilation included)", flush=True)
        return step

    def make_ours_train():
        model = ViT(ours_cfg).to(dev).train()
        opt = build_optimizer(model, opt_cfg)
        return compiled(model, lambda fwd: train_step(model, opt, lambda: fwd(images, labels).loss, dev, dt), "nanofm")

    def make_ref_train():
        model = ref_model().train()
        opt = build_optimizer(model, opt_cfg)  # the same AdamW as nanofm's
        return compiled(
            model, lambda fwd: train_step(model, opt, lambda: fwd(pixel_values=images, labels=labels).loss, dev, dt), "reference"
        )

    def inference(model, forward):
        model.eval()

        def call():
            with torch.no_grad(), autocast(dev, dt):
                return forward(model)

        return call

    def make_ours_infer():
        return inference(ViT(ours_cfg).to(dev), lambda m: m(images).logits)

    def make_ref_infer():
        return inference(ref_model(), lambda m: m(pixel_values=images).logits)

    tag = f"{image}x{image}, patch 4, width {SIZES[size][1]}, {SIZES[size][0]} layers, B={batch}"
    ref_name = "transformers ViTForImageClassification (sdpa)"
    return [
        Case(f"ViT train step ({tag})", "images/s", batch, make_ours_train, make_ref_train, ref_name),
        Case(f"ViT inference ({tag})", "images/s", batch, make_ours_infer, make_ref_infer, ref_name, training=False),
    ]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image", type=int, default=32)
    p.add_argument("--size", default="small", choices=list(SIZES))
    p.add_argument("--compile", default="none", choices=["none", "ours", "both"],
                   help="torch.compile the training forward of nanofm (ours) or of both sides")


if __name__ == "__main__":
    main_for(cases, __doc__.splitlines()[0], add_args)
