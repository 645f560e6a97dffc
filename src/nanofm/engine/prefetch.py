"""Collating the next micro-batches in a background thread while the current one trains.

The data order is a pure function of (step, micro-batch) (sampler.py), so the prefetcher only computes
ahead what the loop will ask for next, in the same order; a checkpoint holds no prefetched state, and a
resumed run starts a new prefetcher at its position.

Randomness inside a collate (augmentation, a caption drawn per image) comes from `collate_generator()`:
a torch.Generator the Trainer seeds from (seed, rank, step, micro-batch) around every training collate,
in whichever thread runs it. Batches are then the same with and without prefetching, and drawing them
never touches the global RNG that dropout uses. Outside a training collate (evaluation, your own calls)
it returns None: torch's global generator.
"""

from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch

from nanofm.engine.evaluate import map_tensors

Position = tuple[int, int]  # (optimizer step, micro-batch)

_local = threading.local()


def collate_generator() -> torch.Generator | None:
    """The generator of the training collate running in this thread, or None (the global RNG)."""
    return getattr(_local, "generator", None)


@contextmanager
def collate_rng(seed: int, step: int, micro: int) -> Iterator[torch.Generator]:
    """Make collate_generator() a generator seeded by (seed, step, micro) in this thread. `micro` counts the
    step's micro-batches over all processes (rank * accumulation + its own index), so that a micro-batch is
    collated alike (the same dynamic masks) whatever the number of processes."""
    g = torch.Generator().manual_seed(hash((seed, step, micro)) % 2**63)  # ints hash the same in every run
    previous, _local.generator = collate_generator(), g
    try:
        yield g
    finally:
        _local.generator = previous


def pin(batch: Any) -> Any:
    """Page-locked copies of a batch's CPU tensors, so that .to("cuda", non_blocking=True) overlaps."""
    return map_tensors(batch, lambda t: t.pin_memory() if t.device.type == "cpu" else t)


class Prefetcher:
    """`produce(position)` for `first`, `next_position(first)`, ... in one daemon thread, at most `depth`
    ahead of the reader. get(position) returns that position's result, or raises the exception produce
    raised there (with its traceback), in the reader's thread."""

    def __init__(self, produce: Callable[[Position], Any], next_position: Callable[[Position], Position],
                 first: Position, depth: int):
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self.produce, self.next_position, self.depth = produce, next_position, depth
        self._start(first)

    def _start(self, first: Position) -> None:
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(self.depth)
        self._thread = threading.Thread(target=self._run, args=(first, self._stop, self._queue),
                                        name="nanofm-prefetch", daemon=True)
        self._thread.start()

    def _run(self, position: Position, stop: threading.Event, out: queue.Queue) -> None:
        while not stop.is_set():
            try:
                item = (position, self.produce(position), None)
            except BaseException as error:  # handed to the reader, which raises it
                item = (position, None, error)
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.05)
                    break
                except queue.Full:
                    continue
            if item[2] is not None:
                return
            position = self.next_position(position)

    def get(self, position: Position) -> Any:
        got, result, error = self._queue.get()
        if got != position:  # the reader moved elsewhere (not in the Trainer's loop): restart there
            self.close()
            self._start(position)
            return self.get(position)
        if error is not None:
            raise error
        return result

    def close(self) -> None:
        """Stop the thread (it finishes the item it is producing) and drop what it prefetched."""
        self._stop.set()
        self._thread.join()
