"""The server's counters in Prometheus's text format (GET /metrics), without a client library: requests and
errors by model, endpoint and status, a latency histogram, a batch-size histogram and the queue lengths."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections import defaultdict
from typing import Callable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)  # seconds
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Histogram:
    def __init__(self, buckets: tuple[float, ...]):
        self.buckets, self.counts, self.sum, self.n = buckets, [0] * (len(buckets) + 1), 0.0, 0

    def observe(self, v: float) -> None:
        self.counts[bisect_left(self.buckets, v)] += 1
        self.sum, self.n = self.sum + v, self.n + 1

    def lines(self, name: str, labels: str) -> list[str]:
        out, total = [], 0
        for le, c in zip([*map(str, self.buckets), "+Inf"], self.counts):
            total += c
            out.append(f'{name}_bucket{{{labels}{"," if labels else ""}le="{le}"}} {total}')
        return [*out, f"{name}_sum{{{labels}}} {self.sum:.6f}", f"{name}_count{{{labels}}} {self.n}"]


class Metrics:
    """Thread-safe: the batch workers observe batch sizes from their threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)  # (model, endpoint, status) -> count
        self.latency: dict[tuple[str, str], Histogram] = {}
        self.batches: dict[str, Histogram] = {}
        self.queues: dict[str, Callable[[], int]] = {}  # model -> its queue's length now

    def request(self, model: str, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[model, endpoint, status] += 1
            self.latency.setdefault((model, endpoint), Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch(self, model: str, size: int) -> None:
        with self._lock:
            self.batches.setdefault(model, Histogram(BATCH_BUCKETS)).observe(size)

    def render(self) -> str:
        with self._lock:
            out = ["# HELP nanofm_requests_total Requests answered, by model, endpoint and HTTP status.",
                   "# TYPE nanofm_requests_total counter"]
            out += [f'nanofm_requests_total{{model="{m}",endpoint="{e}",status="{s}"}} {n}'
                    for (m, e, s), n in sorted(self.requests.items())]
            out += ["# HELP nanofm_errors_total Requests answered with a status of 400 or more.",
                    "# TYPE nanofm_errors_total counter"]
            errors: dict[tuple[str, str], int] = defaultdict(int)
            for (m, e, s), n in self.requests.items():
                errors[m, e] += n if s >= 400 else 0
            out += [f'nanofm_errors_total{{model="{m}",endpoint="{e}"}} {n}' for (m, e), n in sorted(errors.items())]
            out += ["# HELP nanofm_request_seconds Time from a request's arrival to its answer.",
                    "# TYPE nanofm_request_seconds histogram"]
            for (m, e), h in sorted(self.latency.items()):
                out += h.lines("nanofm_request_seconds", f'model="{m}",endpoint="{e}"')
            out += ["# HELP nanofm_batch_size Inputs per forward pass.", "# TYPE nanofm_batch_size histogram"]
            for m, h in sorted(self.batches.items()):
                out += h.lines("nanofm_batch_size", f'model="{m}"')
            out += ["# HELP nanofm_queue_length Requests waiting for a model.", "# TYPE nanofm_queue_length gauge"]
            out += [f'nanofm_queue_length{{model="{m}"}} {length()}' for m, length in sorted(self.queues.items())]
        return "\n".join(out) + "\n"
