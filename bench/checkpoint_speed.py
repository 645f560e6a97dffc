"""Checkpoint overhead: seconds to write (and to verify + load) a checkpoint of a ~10M-parameter model
with its AdamW state, median of repeats.

    python bench/checkpoint_speed.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from common import recorded
from nanofm.engine import TrainConfig
from nanofm.engine import checkpoint as ckpt_io
from nanofm.engine.optim import build_optimizer
from nanofm.families import create


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with recorded():
        run(args)


def run(args: argparse.Namespace) -> None:
    # transformer-small with an 8k vocabulary, 5+4 layers of width 256: about 10M parameters
    model = create("transformer-small", vocab_size=8000, n_encoder_layers=5, n_decoder_layers=4)
    n_params = sum(p.numel() for p in model.parameters())
    opt = build_optimizer(model, TrainConfig())
    src = torch.randint(3, 8000, (4, 16))
    model(src, src, targets=src).loss.backward()
    opt.step()  # populate AdamW's moments
    writes, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(args.repeats):
            t = time.perf_counter()
            path = ckpt_io.save_checkpoint(root, ckpt_io.checkpoint_name(i + 1), model, opt, {"step": i}, "")
            ckpt_io.set_pointer(root, "latest", path.name)
            writes.append(time.perf_counter() - t)
            t = time.perf_counter()
            ckpt_io.verify(path)
            ckpt_io.load_model_weights(model, path / "model.safetensors")
            ckpt_io.load_optimizer(opt, path)
            loads.append(time.perf_counter() - t)
        size = sum(f.stat().st_size for f in path.iterdir())
    print(f"model: {n_params / 1e6:.1f}M parameters, checkpoint {size / 1e6:.0f} MB (weights + AdamW moments)")
    print(f"write (temp folder, fsync, SHA-256 manifest, rename, pointer): median {statistics.median(writes):.3f} s")
    print(f"verify + load weights and optimizer:                          median {statistics.median(loads):.3f} s")


if __name__ == "__main__":
    main()
