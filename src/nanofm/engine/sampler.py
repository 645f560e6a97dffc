"""A deterministic, resumable data order: which examples each process sees at each optimizer step.

Epoch e is a permutation of the dataset seeded by (seed, e). Optimizer step s of the epoch takes the
next batch_size examples, cut into world_size * accum micro-batches; process r takes micro-batches
r*accum ... (r+1)*accum - 1. The position in the data is therefore just (step, micro-batch): resuming
needs no iterator state, and any world size sees the same examples per step. The last partial batch
of an epoch is dropped. With `lengths`, each window of 50 batches of the permutation is sorted by length
before it is cut into batches, and the batches are shuffled: examples of similar length share a batch
(far less padding), and the order is still a pure function of (seed, epoch).
"""

from __future__ import annotations

import threading

import torch

from nanofm.errors import DataError


class StepSampler:
    def __init__(self, n: int, batch_size: int, micro_batch_size: int, world_size: int = 1, rank: int = 0,
                 seed: int = 0, shuffle: bool = True, lengths: list[int] | None = None):
        if batch_size % (micro_batch_size * world_size):
            raise DataError(
                f"batch_size={batch_size} must be a multiple of micro_batch_size={micro_batch_size} x world size {world_size}"
            )
        if n < batch_size:
            raise DataError(f"the training set has {n} examples, fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.micro = n, batch_size, micro_batch_size
        self.world_size, self.rank, self.seed, self.shuffle = world_size, rank, seed, shuffle
        self.lengths = torch.as_tensor(lengths) if lengths is not None else None
        self.accum = batch_size // (micro_batch_size * world_size)
        self.steps_per_epoch = n // batch_size
        self._epoch, self._perm = -1, None
        self._lock = threading.Lock()  # the Trainer's prefetch thread reads it too

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, step within the epoch) of global optimizer step `step`."""
        return divmod(step, self.steps_per_epoch)

    def _permutation(self, epoch: int) -> torch.Tensor:
        with self._lock:
            if epoch != self._epoch:
                g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
                perm = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
                if self.lengths is not None:
                    perm = self._group_by_length(perm, g)
                self._perm, self._epoch = perm, epoch
            return self._perm

    def _group_by_length(self, perm: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b = self.batch_size
        usable = perm[: self.steps_per_epoch * b]
        window = 50 * b
        chunks = [c[torch.sort(self.lengths[c], stable=True).indices] for c in usable.split(window)]
        batches = torch.cat(chunks).view(-1, b)  # (steps, B), each of similar lengths
        return batches[torch.randperm(batches.size(0), generator=g)].reshape(-1)

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
