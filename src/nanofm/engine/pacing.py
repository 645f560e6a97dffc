"""Budget pacing: a run given a time (train.budget) measures its own step and evaluation times and sets its
length so that it ends, periodic evaluations, checkpoints and the final ones included, when the budget is spent;
it corrects the length about REPLANS times over the run, so a machine that gets busy (or idle) mid-run is caught.

The Trainer marks the first step (slower, not timed), asks `warmed_up` and then `replan_now` after each step, and
`length` for the number of steps; every process asks at the same steps, and the Trainer makes the time-based
answers collective."""

from __future__ import annotations

import time

REPLANS = 10


class Pacer:
    def __init__(self, budget: float, start: float, first_step: int, warmup_steps: int, eval_every: int,
                 save_every: int, t_save: float, after_fit: float = 0.0):
        self.budget, self.start, self.first_step, self.warmup_steps = budget, start, first_step, warmup_steps
        self.eval_every, self.save_every, self.t_save, self.after_fit = eval_every, save_every, t_save, after_fit
        self.marked, self.t, self.step, self.overhead, self.t_eval = False, 0.0, first_step, 0.0, 0.0

    def mark(self, step: int) -> None:
        """Start timing steps from `step` (evaluations and saves since excluded)."""
        self.t, self.step, self.overhead, self.marked = time.perf_counter(), step, 0.0, True

    def warmed_up(self, step: int) -> bool:
        """Before the length is known: the warm-up is over (or 10% of the budget spent), time to measure. This
        process's view: the Trainer makes it collective."""
        return step >= self.first_step + 1 + max(3, self.warmup_steps) or time.perf_counter() - self.start > 0.1 * self.budget

    def replan_now(self, step: int, total_steps: int) -> bool:
        """Steps between corrections: a step count (not a time), so that every process replans together."""
        return self.marked and step >= self.step + max(5, total_steps // REPLANS)

    def step_time(self, step: int, exclude: float = 0.0) -> float:
        """Seconds per step since the last mark, evaluations and saves (and `exclude`) left out."""
        return (time.perf_counter() - self.t - self.overhead - exclude) / max(1, step - self.step)

    def length(self, step: int, t_step: float) -> int:
        """The run's total steps, from `step`, if the rest runs at t_step a step with this pacer's evaluation and
        save costs: what is left of the budget, less the final evaluation and save, and what the caller does after
        the run (after_fit: e.g. the loss-curve plot)."""
        remaining = self.budget - (time.perf_counter() - self.start) - self.t_eval - self.t_save - self.after_fit
        per_step = (t_step + (self.t_eval / self.eval_every if self.eval_every else 0)
                    + (self.t_save / self.save_every if self.save_every else 0))
        return step + max(1, int(remaining / per_step))


def save_seconds(n_bytes: int) -> float:
    """The expected time of one checkpoint of n_bytes (weights and AdamW moments), at about 200 MB/s."""
    return 0.05 + n_bytes / 200e6
