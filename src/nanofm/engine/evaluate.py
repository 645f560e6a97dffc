"""Evaluation shared by the Trainer and `nanofm evaluate`: the loss over a dataset, plus task metrics."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from nanofm.engine import distributed as dist
from nanofm.engine.sampler import shard_batches

Collate = Callable[[list[Any]], dict[str, Any]]
MetricsFn = Callable[[nn.Module, Sequence[Any]], dict[str, float]]


def map_tensors(batch: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """fn applied to every tensor of a batch (nested dicts, lists and tuples); other values kept."""
    if isinstance(batch, Tensor):
        return fn(batch)
    if isinstance(batch, dict):
        return {k: map_tensors(v, fn) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(map_tensors(v, fn) for v in batch)
    return batch


def to_device(batch: Any, device: torch.device) -> Any:
    return map_tensors(batch, lambda t: t.to(device, non_blocking=True))


def loss_weight(output: Any, batch: dict[str, Any]) -> float | Tensor:
    """How many items the model's mean loss averaged over: its `n_targets` (real tokens) if it says, else
    the number of examples in the batch. A count the model made on its device stays there (a float64
    0-dim tensor), so that summing it waits for nothing; the loop reads its sums once per step."""
    n = getattr(output, "n_targets", None)
    if isinstance(n, Tensor):
        return n.detach().to(torch.float64)
    if n is not None:
        return float(n)
    first = next(v for v in batch.values() if isinstance(v, Tensor))
    return float(first.size(0))


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    data: Sequence[Any],
    collate: Collate,
    batch_size: int,
    device: torch.device,
    precision: str = "fp32",
    compute_metrics: MetricsFn | None = None,
    info: dist.DistInfo | None = None,
    sharded: bool = False,
) -> dict[str, float]:
    """{"eval/loss": token-weighted mean loss over `data`, "eval/<metric>": ...}. Under DDP every process
    scores its shard and the sums are all-reduced; task metrics run on rank 0 and are broadcast. A sharded
    model (FSDP) runs each forward on all processes together, so every process scores all of `data`."""
    rank, world = (info.rank, info.world_size) if info and not sharded else (0, 1)
    was_training = model.training
    model.eval()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss * weight, weight
    for idx in shard_batches(len(data), batch_size, world, rank):
        batch = to_device(collate([data[i] for i in idx]), device)
        with autocast(device, precision):
            out = model(**batch)
        w = loss_weight(out, batch)
        sums[0] += out.loss.detach().double() * w  # on the device: no read-back per batch
        sums[1] += w
    if not sharded:
        dist.all_reduce_sum(sums)
    metrics = {"eval/loss": (sums[0] / sums[1]).item() if sums[1] > 0 else float("nan")}
    extra = None
    if compute_metrics is not None and (rank == 0 or sharded):
        with autocast(device, precision):
            extra = {f"eval/{k}": float(v) for k, v in compute_metrics(model, data).items()}
    if compute_metrics is not None and not sharded:
        extra = dist.broadcast_object(extra)
        metrics.update(extra)
    model.train(was_training)
    return metrics
