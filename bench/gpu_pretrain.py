"""The GPU recipe timed: configs/bert-base-mlm-es-gpu.yaml (BERT-base, bf16, fused AdamW, torch.compile) trained
for a few steps from shards, printing tokens/s and MFU against the GPU's bf16 matrix-product rate measured in the
same run. The shards are made from the Debian corpus (data/corpus-es, `make data-corpus`; copy it to the GPU
machine) with its own 8,000-entry tokenizer standing in for BETO's 31,002 (the same model otherwise: the output
layer is then 4x smaller; say so beside the figures). bench/gpu.sh runs it; --device cpu --quick is a smoke test.

    python bench/gpu_pretrain.py [--steps 30] [--micro-batch 128] [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from common import REPO, count_flops, matmul_probe, recorded

CORPUS = REPO / "data" / "corpus-es"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--micro-batch", type=int, default=128, help="sequences per forward on the one GPU")
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="a tiny model, 3 steps of 4 sequences (CPU smoke test)")
    p.add_argument("--corpus", type=Path, default=CORPUS, help="train.txt, valid.txt and tokenizer.json (default data/corpus-es)")
    p.add_argument("--shards", type=Path, default=Path("/tmp/nanofm-gpu-shards"), help="where the shards go")
    args = p.parse_args()
    from nanofm.data.shards import tokenize_to_shards
    from nanofm.engine import Trainer
    from nanofm.families.bert.model import BertForMaskedLM
    from nanofm.tasks import build_task, load_task_config

    with recorded("gpu_pretrain"):
        shards = args.shards
        for split in ("train", "valid"):
            tokenize_to_shards([args.corpus / f"{split}.txt"], args.corpus / "tokenizer.json", shards / split, log=lambda m: None)
        micro = 4 if args.quick else args.micro_batch
        steps = 3 if args.quick else args.steps
        tiny = ["model.d_model=32", "model.n_layers=1", "model.n_heads=2", "model.d_ff=64"] if args.quick else []
        cfg = load_task_config(REPO / "configs" / "bert-base-mlm-es-gpu.yaml", [
            f"data.shards={shards}", f"train.steps={steps}", f"train.batch_size={micro}", f"train.micro_batch_size={micro}",
            "train.warmup_steps=1", "train.eval_every=0", "train.save_every=0", "train.log_every=1", "data.eval_blocks=8",
            f"train.device={args.device}", *(["train.compile=false", "train.precision=fp32"] if args.device == "cpu" else []),
            *tiny])
        parts = build_task(cfg)
        device = torch.device(args.device)
        model: BertForMaskedLM = parts.model
        batch = {k: v.to(device) for k, v in parts.collate([parts.train_data[i] for i in range(micro)]).items()}
        model.to(device)
        flops = count_flops(lambda: model(**batch).loss.backward())  # one micro-batch, forward and backward
        model.zero_grad(set_to_none=True)
        times: list[float] = []

        class Timed(Trainer):
            def _optimizer_step(self):
                out = super()._optimizer_step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter())
                return out

        trainer = Timed(model, parts.train_data, cfg.train, collate=parts.collate, progress=False)
        times.append(time.perf_counter())
        trainer.fit()
        step_s = statistics.median([b - a for a, b in zip(times, times[1:])][min(5, steps - 1):])  # past compilation
        peak = matmul_probe(device, torch.bfloat16 if device.type == "cuda" else torch.float32)()
        tokens = micro * cfg.data.max_len
        print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary "
              f"{model.cfg.vocab_size} (BETO's: 31,002), blocks of {cfg.data.max_len}, {micro} a step on one device, "
              f"precision {trainer.precision}, compile {cfg.train.compile}")
        print(f"median step {step_s * 1e3:.1f} ms over {len(times) - 1} steps: {tokens / step_s:,.0f} tokens/s; "
              f"{flops / step_s / 1e12:.1f} TFLOP/s of model FLOPs; matrix-product peak measured {peak / 1e12:.1f} "
              f"TFLOP/s; MFU {flops / step_s / peak:.1%}")


if __name__ == "__main__":
    main()
