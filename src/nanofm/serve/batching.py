"""Requests for one model that arrive together share one forward pass: a Batcher queues each request's inputs
(a bounded queue: 503 with Retry-After when full), collects what arrives within a short window up to a
maximum batch, and runs the batch in the model's own worker thread under torch.inference_mode(), so that a
slow model (text to image) never blocks the event loop or the other models."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

from nanofm.serve.limits import ApiError
from nanofm.serve.metrics import Metrics

RunBatch = Callable[[list, Hashable], list]  # (inputs, options) -> one output per input


@dataclass
class Job:
    inputs: list
    options: Hashable  # requests share a forward pass only with the same options (top_k, beam, ...)
    future: asyncio.Future = field(repr=False)


class Batcher:
    def __init__(self, name: str, run: RunBatch, metrics: Metrics, window_s: float = 0.005, max_batch: int = 32,
                 max_queue: int = 64):
        self.name, self.run, self.metrics = name, run, metrics
        self.window_s, self.max_batch, self.max_queue = window_s, max_batch, max_queue
        self.queue: asyncio.Queue[Job] | None = None
        self.task: asyncio.Task | None = None
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"nanofm-serve-{name}")
        self._held: Job | None = None  # a job that did not fit the last batch: it opens the next one
        metrics.queues[name] = lambda: self.queue.qsize() if self.queue else 0

    def start(self) -> None:
        """Start collecting on the running event loop (the app's lifespan calls this)."""
        self.queue = asyncio.Queue(self.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.executor.shutdown(wait=True)

    async def submit(self, inputs: list, options: Hashable, timeout_s: float) -> list:
        """The outputs for `inputs`; 503 when the queue is full, 504 after `timeout_s`."""
        if self.queue is None:
            raise RuntimeError("the batcher was not started (the app's lifespan starts it)")
        job = Job(inputs, options, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise ApiError(503, "model", f"{self.name} has {self.max_queue} requests waiting (--max-queue); retry shortly",
                           {"Retry-After": "1"}) from None
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_s)
        except TimeoutError:
            job.future.cancel()  # not started yet: the worker skips it
            raise ApiError(504, "model", f"no answer within {timeout_s:g} s (--timeout)") from None

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            jobs = [j for j in jobs if not j.future.done()]  # timed out while waiting
            if not jobs:
                continue
            try:
                outputs = await loop.run_in_executor(self.executor, self._run, jobs)
            except Exception as e:  # noqa: BLE001  (each waiting request gets the error, the loop goes on)
                for j in jobs:
                    if not j.future.done():
                        j.future.set_exception(e)
                continue
            for j, out in zip(jobs, outputs):
                if not j.future.done():
                    j.future.set_result(out)

    async def _collect(self) -> list[Job]:
        """The first waiting job, then whatever arrives within the window, up to max_batch inputs. A lone
        request (nothing else waiting) goes at once: the window is only spent when requests are concurrent."""
        first = self._held or await self.queue.get()
        self._held = None
        jobs, n = [first], len(first.inputs)
        deadline = time.monotonic() + self.window_s
        while n < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = deadline - time.monotonic()
                if left <= 0 or len(jobs) == 1:
                    break
                try:
                    job = await asyncio.wait_for(self.queue.get(), left)
                except TimeoutError:
                    break
            if n + len(job.inputs) > self.max_batch:
                self._held = job
                break
            jobs.append(job)
            n += len(job.inputs)
        return jobs

    def _run(self, jobs: list[Job]) -> list[list]:
        """In the worker thread: one forward pass per group of jobs with the same options."""
        outputs: dict[int, list] = {}
        groups: dict[Any, list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault(j.options, []).append(i)
        with torch.inference_mode():
            for options, members in groups.items():
                inputs = [x for i in members for x in jobs[i].inputs]
                self.metrics.batch(self.name, len(inputs))
                results = self.run(inputs, options)
                for i in members:
                    outputs[i], results = results[: len(jobs[i].inputs)], results[len(jobs[i].inputs) :]
        return [outputs[i] for i in range(len(jobs))]
