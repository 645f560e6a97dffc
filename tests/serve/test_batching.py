"""The Batcher on its own, with a stand-in model: requests that arrive together share a call, options are
never mixed, a full queue is a 503 with Retry-After, and a slow answer a 504."""

from __future__ import annotations

import asyncio
import threading

import pytest

from nanofm.serve.batching import Batcher
from nanofm.serve.limits import ApiError
from nanofm.serve.metrics import Metrics


def _batcher(calls: list, delay: float = 0.0, **kw) -> Batcher:
    def run(inputs: list, options) -> list:
        calls.append((list(inputs), options))
        threading.Event().wait(delay)
        return [(x, options) for x in inputs]
    return Batcher("m", run, Metrics(), **kw)


async def _submit_all(b: Batcher, jobs: list[tuple[list, object]], timeout: float = 5.0) -> list:
    b.start()
    try:
        return await asyncio.gather(*(b.submit(x, o, timeout) for x, o in jobs), return_exceptions=True)
    finally:
        await b.stop()


def test_requests_arriving_together_share_a_call_and_get_their_own_answers():
    # the bug it catches: no batching at all (one call per request), or answers handed to the wrong request
    calls: list = []
    jobs = [([i, 10 + i], "k3" if i % 2 else "k5") for i in range(8)]
    out = asyncio.run(_submit_all(_batcher(calls, window_s=0.05, max_batch=32), jobs))
    assert out == [[(x, o) for x in xs] for xs, o in jobs]
    assert len(calls) == 2  # one call per option, each holding only its option's inputs
    assert all({"k3" if x % 10 % 2 else "k5" for x in inputs} == {options} for inputs, options in calls)
    assert sorted(len(c[0]) for c in calls) == [8, 8]


def test_max_batch_bounds_a_call_and_one_turns_batching_off():
    # the bug it catches: a batch growing past --max-batch (memory, latency), or --max-batch 1 still batching
    for max_batch, sizes in ((3, {1, 2, 3}), (1, {1})):
        calls: list = []
        out = asyncio.run(_submit_all(_batcher(calls, window_s=0.05, max_batch=max_batch), [([i], None) for i in range(7)]))
        assert out == [[(i, None)] for i in range(7)]
        assert {len(c[0]) for c in calls} <= sizes and max(len(c[0]) for c in calls) == max(sizes)


def test_a_full_queue_is_a_503_with_retry_after_and_a_slow_answer_a_504():
    # the bug it catches: an unbounded queue (memory and waiting time without end), or a request waiting forever
    calls: list = []
    out = asyncio.run(_submit_all(_batcher(calls, delay=0.3, window_s=0.0, max_batch=1, max_queue=2),
                                  [([i], None) for i in range(6)], timeout=2.0))
    refused = [e for e in out if isinstance(e, ApiError)]
    assert refused and all(e.status == 503 and e.headers["Retry-After"] == "1" for e in refused)
    assert [o for o in out if not isinstance(o, ApiError)] == [[(i, None)] for i in range(len(out) - len(refused))]
    out = asyncio.run(_submit_all(_batcher([], delay=0.5, window_s=0.0, max_batch=1), [([1], None)], timeout=0.1))
    assert isinstance(out[0], ApiError) and out[0].status == 504


def test_a_failing_batch_fails_its_requests_not_the_batcher():
    # the bug it catches: an exception in the model killing the collecting loop (every later request hangs)
    def run(inputs: list, options) -> list:
        if options == "bad":
            raise ValueError("boom")
        return inputs

    async def go():
        b = Batcher("m", run, Metrics(), window_s=0.0, max_batch=4)
        b.start()
        try:
            with pytest.raises(ValueError):
                await b.submit([1], "bad", 2.0)
            return await b.submit([2], "good", 2.0)
        finally:
            await b.stop()

    assert asyncio.run(go()) == [2]
