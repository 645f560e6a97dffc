"""Progress for long work: a tqdm bar on a terminal, a plain heartbeat line in logs.

    with progress_bar(total=5000, desc="train", unit="step") as bar:
        for ...:
            bar.update(1)
            bar.set_postfix({"loss": "3.21"})

On a terminal (or in a notebook) this is tqdm. Anywhere else (a log file, a pipe, CI) tqdm's carriage
returns would fill the log with redrawn bars, so the bar is a `Heartbeat` instead: at most one line every
NANOFM_HEARTBEAT_S seconds (default 30; 0 turns it off), checked when the bar moves, such as
    train: 1200/5000 steps (24%), 2:01 elapsed, ~6:20 left, loss 3.21
and a last line when it closes (for a bar that `leave`s, or one that has spoken). Messages printed while
a bar runs go through `write`, which keeps a terminal bar whole and flushes so logs keep their order.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Callable, Iterable, Iterator, TextIO, Union

from tqdm.auto import tqdm

from nanofm.errors import UserError

HEARTBEAT_S = 30.0  # seconds between heartbeat lines unless NANOFM_HEARTBEAT_S says otherwise
_NOTEBOOK = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)  # tqdm.auto chose Jupyter's widget


def heartbeat_seconds() -> float:
    """NANOFM_HEARTBEAT_S as seconds (0 = no heartbeat), or the default."""
    value = os.environ.get("NANOFM_HEARTBEAT_S", "").strip()
    if not value:
        return HEARTBEAT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also catches nan
        raise UserError(f"NANOFM_HEARTBEAT_S={value!r}: give seconds between progress lines, >= 0 (0 = none)")
    return seconds


def _clock(seconds: float) -> str:
    """3723 -> '1:02:03', 120.7 -> '2:01'."""
    m, s = divmod(round(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _count(x: float) -> str:
    """5000.0 -> '5000', 2.5 -> '2.5'."""
    return str(int(x)) if float(x).is_integer() else f"{x:.2f}"


def _plural(unit: str) -> str:
    """'step' -> 'steps', 'batch' -> 'batches'; 'it' and plurals stay."""
    if unit == "it" or unit.endswith("s"):
        return unit
    return unit + ("es" if unit.endswith(("ch", "sh", "x")) else "s")


class Heartbeat:
    """The part of tqdm's interface nanofm uses (iteration, update, set_postfix, set_description, total,
    refresh, write, close, `with`), printed as a plain line at most every `every` seconds."""

    disable = False

    def __init__(self, iterable: Iterable[Any] | None, total: float | None, desc: str, unit: str, initial: int,
                 leave: bool, file: TextIO, every: float, clock: Callable[[], float]):
        self.iterable, self.desc, self.leave, self.file, self.every, self.clock = iterable, desc, leave, file, every, clock
        if total is None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.total = total
        self.unit = _plural(unit)  # "1200/5000 steps"
        self.n = self.initial = initial
        self.postfix = ""
        self.start = self.last = clock()
        self.spoken = self.closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("this progress bar was made without an iterable")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> "Heartbeat":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: float = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.every:
            self.last = now
            self._say(self.line(now))

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(ordered_dict or {}), **kwargs}
        self.postfix = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in items.items())

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        self.desc = desc or ""

    def refresh(self) -> None:
        """Nothing to redraw: the next line is due by the clock, not by changes."""

    @staticmethod
    def write(s: str, file: TextIO | None = None, end: str = "\n") -> None:
        print(s, end=end, file=file or sys.stdout, flush=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.leave or self.spoken:
            done = self.total is None or self.n >= self.total
            self._say(self.line(self.clock(), "done" if done else "ended early"))

    def line(self, now: float, end: str = "") -> str:
        """'train: 1200/5000 steps (24%), 2:01 elapsed, ~6:20 left, loss 3.21'; `end` replaces the estimate."""
        elapsed = now - self.start
        if self.total:
            parts = [f"{_count(self.n)}/{_count(self.total)} {self.unit} ({int(100 * self.n / self.total)}%)"]
        else:
            parts = [f"{_count(self.n)} {self.unit}"]
        parts.append(f"{_clock(elapsed)} elapsed")
        moved = self.n - self.initial
        if end:
            parts.append(end)
        elif self.total and moved > 0 and elapsed > 0:
            parts.append(f"~{_clock(max(self.total - self.n, 0) * elapsed / moved)} left")
        if self.postfix:
            parts.append(self.postfix)
        return (f"{self.desc}: " if self.desc else "") + ", ".join(parts)

    def _say(self, line: str) -> None:
        self.spoken = True
        print(line, file=self.file, flush=True)


Bar = Union[tqdm, Heartbeat]


def progress_bar(iterable: Iterable[Any] | None = None, total: float | None = None, desc: str = "", *,
                 enabled: bool = True, unit: str = "it", initial: int = 0, leave: bool = True,
                 file: TextIO | None = None, every: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> Bar:
    """A progress bar over `iterable` (or moved by hand with `update`) on `file` (default stderr): tqdm when
    `file` is a terminal or Jupyter shows it, else a `Heartbeat` of one line at most every `every` seconds
    (default NANOFM_HEARTBEAT_S, else 30; 0 = silent). Disabled (`enabled=False`), it is a silent tqdm
    that still counts, iterates and accepts every call. `clock` is for tests."""
    file = sys.stderr if file is None else file
    try:
        interactive = file.isatty() or _NOTEBOOK
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        interactive = False
    every = heartbeat_seconds() if every is None and enabled and not interactive else every
    if not enabled or (not interactive and not every):
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=True)
    if interactive:
        return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=file,
                    dynamic_ncols=True)
    return Heartbeat(iterable, total, desc, unit, initial, leave, file, every, clock)


def write(message: str) -> None:
    """Print a line to stdout, flushed, without breaking a terminal bar (tqdm lifts its bars around it)."""
    tqdm.write(message)
    sys.stdout.flush()
