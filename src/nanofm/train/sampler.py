"""A deterministic, resumable data order: which examples each process sees at each optimizer step.

Epoch e is a permutation of the dataset seeded by (seed, e). Optimizer step s of the epoch takes the
next batch_size examples, cut into world_size * accum micro-batches; process r takes micro-batches
r*accum ... (r+1)*accum - 1. The position in the data is therefore just (step, micro-batch): resuming
needs no iterator state, and any world size sees the same examples per step. The last partial batch
of an epoch is dropped.
"""

from __future__ import annotations

import torch


class StepSampler:
    def __init__(self, n: int, batch_size: int, micro_batch_size: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0, shuffle: bool = True):
        if batch_size % (micro_batch_size * world_size):
            raise ValueError(
                f"batch_size={batch_size} must be a multiple of micro_batch_size={micro_batch_size} x world size {world_size}"
            )
        if n < batch_size:
            raise ValueError(f"the training set has {n} examples, fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.micro = n, batch_size, micro_batch_size
        self.world_size, self.rank, self.seed, self.shuffle = world_size, rank, seed, shuffle
        self.accum = batch_size // (micro_batch_size * world_size)
        self.steps_per_epoch = n // batch_size
        self._epoch, self._perm = -1, None

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step within the epoch) of global optimizer step `step`."""
        return divmod(step, self.steps_per_epoch)

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
            self._epoch = epoch
        return self._perm

    def micro_batches(self, step: int) -> list[list[int]]:
        """This process's `accum` micro-batches (lists of example indices) for optimizer step `step`."""
        epoch, k = self.position(step)
        batch = self._permutation(epoch)[k * self.batch_size : (k + 1) * self.batch_size]
        mine = batch.view(self.world_size, self.accum, self.micro)[self.rank]
        return [m.tolist() for m in mine]


def shard_batches(n: int, batch_size: int, world_size: int = 1, rank: int = 0) -> list[list[int]]:
    """Evaluation order: every example once over all processes, in order, batched."""
    mine = list(range(rank, n, world_size))
    return [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
