"""Training runs that share the time left before a deadline (the demo's parts): each run's budget is fixed
when it starts, from the time really left, so a run that overran (a busy machine, a slow evaluation) leaves
less to the ones after it, and the last one ends by the deadline.

What a run costs beyond its training budget (building the model and data, evaluating, scoring the test
split) is measured on the runs already done and set aside for each run still to come. A share may be
trained by several runs (both starts of a label-curve point): each of them costs that overhead.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence


class TimeShare:
    def __init__(self, deadline: float, weights: Sequence[float], reserve: float = 0.0, overhead: float = 2.0,
                 clock: Callable[[], float] = time.time, runs: Sequence[int] | None = None):
        """deadline: a clock() value; weights: each share of the training time, in the order they run;
        reserve: seconds kept for the work after the last run; overhead: first guess of a run's seconds beyond
        its budget, replaced by the mean measured one; runs: how many runs train each share (1 each by
        default; start() returns the share's seconds, which its runs split)."""
        self.deadline, self.weights, self.reserve, self.clock = deadline, list(weights), reserve, clock
        self.runs = list(runs) if runs is not None else [1] * len(self.weights)
        if len(self.runs) != len(self.weights) or min(self.runs, default=1) < 1:
            raise ValueError(f"runs: one count >= 1 per weight, got {self.runs} for {len(self.weights)} weights")
        self.overheads: list[float] = []
        self.guess, self.i, self._started, self._budget = overhead, 0, 0.0, 0.0

    @property
    def overhead(self) -> float:
        return sum(self.overheads) / len(self.overheads) if self.overheads else self.guess

    def left(self) -> float:
        return self.deadline - self.clock()

    def start(self) -> float:
        """Training seconds for the next share (at least 1), all its runs together."""
        rest = self.weights[self.i:]
        if not rest:
            raise IndexError("every run of this share has started")
        free = self.left() - self.reserve - self.overhead * sum(self.runs[self.i:])
        self._budget = max(1.0, free * rest[0] / sum(rest))
        self._started = self.clock()
        return self._budget

    def finish(self) -> None:
        """The runs of the share that start() sized have ended: the overhead of each is measured."""
        self.overheads.append(max(0.0, self.clock() - self._started - self._budget) / self.runs[self.i])
        self.i += 1
