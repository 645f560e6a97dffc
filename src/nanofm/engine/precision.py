"""The precision a run trains in: bf16 autocast on CUDA (where supported); on CPU fp32 unless bf16 is asked for
and measured faster on this machine (bf16 matrix products are 2.3x faster on some CPUs and slower on others)."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from nanofm.engine import distributed as dist
from nanofm.engine.evaluate import autocast, to_device
from nanofm.progress import write


def choose_precision(asked: str, model: nn.Module, first_batch: Callable[[], Any], device: torch.device,
                     is_main: bool) -> str:
    """"fp32" or "bf16" for train.precision `asked`; on CPU with "bf16", rank 0 times both and decides for all."""
    if device.type == "cuda":
        return "fp32" if asked == "fp32" or not torch.cuda.is_bf16_supported() else "bf16"
    if asked != "bf16":
        return "fp32"
    t32, t16 = (time_step(model, first_batch, device, p) for p in ("fp32", "bf16"))
    chosen = dist.broadcast_object("bf16" if t16 < t32 else "fp32")
    if is_main:
        write(f"precision: bf16 {t16 * 1e3:.1f} ms vs fp32 {t32 * 1e3:.1f} ms per micro-batch on this CPU: using {chosen}")
    return chosen


def time_step(model: nn.Module, first_batch: Callable[[], Any], device: torch.device, precision: str,
              repeats: int = 3) -> float:
    """Median seconds of a forward + backward on the first micro-batch; leaves RNG and gradients as found."""
    rng = torch.get_rng_state()
    batch = to_device(first_batch(), device)
    times = []
    for _ in range(repeats + 1):
        t = time.perf_counter()
        with autocast(device, precision):
            loss = model(**batch).loss
        loss.backward()
        times.append(time.perf_counter() - t)
    model.zero_grad(set_to_none=True)
    torch.set_rng_state(rng)
    return float(np.median(times[1:]))
