"""How fast this machine is right now, and how many threads to use: a short probe before planning a budget.

`probe()` takes about `seconds` and measures two things:

1. The CPU time other processes use (`busy_cores`). It reads /proc/stat twice around a quiet window in
   which this process sleeps, and subtracts this process's own CPU time (all its threads) over that
   window: `busy_cores` = cores in use on this process's CPUs - cores this process used. Steal time (a
   hypervisor running another guest on our core) counts as in use. None where /proc/stat is missing.
2. The float32 matrix-product speed of a small, representative product (512x512 @ 512x1024: a small
   model's feed-forward layer on 512 tokens, about 8 ms on one core) with 1 thread and with each
   candidate thread count (powers of two up to the CPUs this process may use, and that count; 8 at
   most). On 2 idle cores of a VM this product ran 1.9-2.0x faster with 2 threads; the 256-row one
   scaled erratically (1.3-1.9x), too noisy to judge load by. Each sample runs products back to back
   for a while and gives two figures: the sustained rate (work done / wall time, time-slicing included:
   what training would get) and the uninterrupted rate (the fastest tenth of the single products: what
   the cores give when they are ours). With 1 thread the product runs as four 128-row blocks, each
   timed: about 2 ms, shorter than a time slice, so that the uninterrupted 1-thread rate stays one
   core's true speed even when every core is shared (the whole product, sliced, measured less than half
   of it then; the blocks run at the whole product's speed). The candidates are measured in
   interleaved rounds, so that a load that comes and goes hits them all alike; each figure is the
   median of its rounds. torch's thread count is restored afterwards.

The rule (`slowdown`, `busy`, `best_threads`):

- With idle cores, n threads give about n x one thread's speed, up to the number of physical cores
  (SMT siblings share one core's arithmetic units). So the expected speed of an idle machine is
  `per_core_gflops x cores`, where `per_core_gflops` is the uninterrupted 1-thread rate.
- When other processes hold cores, the OS time-slices them with ours, and the sustained n-thread rate
  falls below n x one thread; with torch's threads waiting on each other at every product, one thread
  descheduled stalls them all, and 2 threads can be several times slower than 1. When others hold every
  core, even one thread's sustained rate falls below its uninterrupted rate.
  `slowdown` = expected / the best sustained rate.
- The machine counts as busy when `slowdown >= SLOW` (1.5, which leaves room for imperfect scaling on
  idle cores: 2 threads at 1.33x one thread still pass) or when other processes use at least
  `BUSY_CORES` (0.5) cores.
- `best_threads` is the fastest count; a smaller count within `TIE` (5%) of it wins, since fewer threads
  suffer less when the load changes.

`MachineProbe.apply()` sets torch's thread count to `best_threads`; `message()` gives the one line to
show when the machine is busy, or None.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

BUSY_CORES = 0.5  # other processes using at least this many cores: busy
SLOW = 1.5  # expected / measured speed at least this: busy
TIE = 0.05  # a smaller thread count within this fraction of the fastest is taken instead
MAX_CANDIDATES = 8  # thread counts measured at most
QUIET_SHARE = 0.25  # share of the probe's time spent in the quiet /proc/stat window
ROUNDS = 3  # interleaved rounds over the thread counts; each count's figure is their median

_M, _K, _N = 512, 512, 1024  # the probe's product: (M, K) @ (K, N)
_BLOCK = 128  # rows per timed product with 1 thread


@dataclass(frozen=True)
class MachineProbe:
    """What `probe()` measured, and what it concludes."""

    cpus: int  # logical CPUs this process may run on
    cores: int  # physical cores among them (= cpus without SMT)
    busy_cores: float | None  # cores other processes used in the quiet window; None: no /proc/stat
    gflops_by_threads: dict[int, float]  # sustained float32 matmul GFLOP/s per thread count (median of rounds)
    best_threads: int  # the thread count to use
    gflops: float  # sustained GFLOP/s at best_threads: the speed to plan with
    per_core_gflops: float  # uninterrupted GFLOP/s with 1 thread: one core's speed when it is ours
    expected_gflops: float  # what the idle machine would give: one idle core's speed x cores
    slowdown: float  # expected_gflops / gflops (0.9-1.25 measured on 2 idle cores; SLOW or more: busy)
    busy: bool  # slowdown >= SLOW or busy_cores >= BUSY_CORES

    def message(self) -> str | None:
        """One line for the user when the machine is busy, else None."""
        if not self.busy:
            return None
        others = "" if self.busy_cores is None else (
            f"other processes use ~{self.busy_cores:.1f} of {self.cpus} cores, ")
        threads = f"{self.best_threads} thread" + ("" if self.best_threads == 1 else "s")
        return (f"the machine is busy: {others}{self.slowdown:.1f}x below the expected speed; "
                f"using {threads}; results will be weaker")

    def apply(self) -> int:
        """Set torch's intra-op thread count to best_threads; returns the previous count."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.best_threads)
        return previous


def probe(seconds: float = 2.0, *, measure: Callable[[int, float], tuple[float, float]] | None = None,
          read_stat: Callable[[], str | None] | None = None, cpus: int | None = None,
          clock: Callable[[], float] = time.perf_counter,
          own_cpu: Callable[[], float] = time.process_time) -> MachineProbe:
    """Measure the machine for about `seconds` in all (see the module docstring for the rule).

    Injectable for tests: `measure(threads, seconds)` returns (sustained, uninterrupted) GFLOP/s of one
    sample of about `seconds` with that many threads (default: the float32 matmul); `read_stat()`
    returns /proc/stat's text or None; `cpus` fixes the CPU count (and takes the cores to be as many);
    `clock` and `own_cpu` give wall and this process's CPU seconds around the quiet window.
    """
    allowed = _allowed_cpus()
    if cpus is None:
        cpus, cores = len(allowed) if allowed else (os.cpu_count() or 1), _physical_cores(allowed)
    else:
        cores = cpus
    cores = max(1, min(cores, cpus))
    measure = measure or _matmul_gflops
    read_stat = read_stat or _read_proc_stat

    quiet = QUIET_SHARE * seconds
    before, own0, t0 = read_stat(), own_cpu(), clock()
    if quiet > 0:
        time.sleep(quiet)
    after, own1, t1 = read_stat(), own_cpu(), clock()
    busy_cores = None
    if before is not None and after is not None:
        busy_cores = busy_cores_between(before, after, own_seconds=own1 - own0, wall_seconds=t1 - t0,
                                        cpus=allowed)

    counts = thread_candidates(cpus)
    per_sample = (seconds - quiet) / (ROUNDS * len(counts))
    samples: dict[int, list[tuple[float, float]]] = {n: [] for n in counts}
    previous = torch.get_num_threads()
    try:
        for _ in range(ROUNDS):
            for n in counts:
                samples[n].append(measure(n, per_sample))
    finally:
        torch.set_num_threads(previous)
    rates = {n: statistics.median(sustained for sustained, _ in s) for n, s in samples.items()}

    fastest = max(rates.values())
    best = min(n for n, r in rates.items() if r >= (1 - TIE) * fastest)
    per_core = statistics.median(uninterrupted for _, uninterrupted in samples[1])
    expected = per_core * cores
    slowdown = expected / rates[best]
    busy = slowdown >= SLOW or (busy_cores is not None and busy_cores >= BUSY_CORES)
    return MachineProbe(cpus=cpus, cores=cores, busy_cores=busy_cores, gflops_by_threads=rates,
                        best_threads=best, gflops=rates[best], per_core_gflops=per_core,
                        expected_gflops=expected, slowdown=slowdown, busy=busy)


def thread_candidates(cpus: int) -> list[int]:
    """1, 2, 4, ... up to cpus, and cpus itself; at most MAX_CANDIDATES (the largest powers dropped)."""
    powers = [1 << i for i in range(cpus.bit_length()) if 1 << i < cpus]
    return powers[:MAX_CANDIDATES - 1] + [cpus]


def busy_cores_between(before: str, after: str, *, own_seconds: float, wall_seconds: float,
                       cpus: set[int] | None = None) -> float | None:
    """Cores other processes used between two /proc/stat snapshots: the cores in use (on the `cpus`
    listed, or on all when their lines are missing) minus the cores this process used (`own_seconds`
    of CPU time over `wall_seconds`). None when the text has no usable cpu lines."""
    a, b = _cpu_lines(before), _cpu_lines(after)
    ids = sorted(i for i in a.keys() & b.keys() if isinstance(i, int) and (cpus is None or i in cpus))
    if ids:
        busy = sum(_busy(b[i]) - _busy(a[i]) for i in ids)
        total = sum(sum(b[i]) - sum(a[i]) for i in ids)
        n = len(ids)
    elif "all" in a and "all" in b:
        busy, total = _busy(b["all"]) - _busy(a["all"]), sum(b["all"]) - sum(a["all"])
        n = len(cpus) if cpus else (os.cpu_count() or 1)
    else:
        return None
    if total <= 0 or wall_seconds <= 0:
        return None
    in_use = n * busy / total  # cores in use, by everyone
    return max(0.0, in_use - own_seconds / wall_seconds)


def _cpu_lines(text: str) -> dict[int | str, list[int]]:
    """{'all': fields of the aggregate line, 0: fields of cpu0, ...}; fields without guest times."""
    lines: dict[int | str, list[int]] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts or not parts[0].startswith("cpu"):
            continue
        key = parts[0][3:]
        # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is already in user
        fields = [int(x) for x in parts[1:9]]
        lines["all" if key == "" else int(key)] = fields
    return lines


def _busy(fields: list[int]) -> int:
    """Jiffies not idle: everything but idle (3) and iowait (4); steal counts as in use."""
    return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)


def _read_proc_stat() -> str | None:
    try:
        return Path("/proc/stat").read_text()
    except OSError:
        return None


def _allowed_cpus() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return None


def _physical_cores(allowed: set[int] | None) -> int:
    """Distinct (package, core) pairs among the allowed CPUs, from sysfs; the CPU count where unreadable."""
    if not allowed:
        return os.cpu_count() or 1
    pairs = set()
    try:
        for i in allowed:
            topology = Path(f"/sys/devices/system/cpu/cpu{i}/topology")
            pairs.add(((topology / "physical_package_id").read_text().strip(),
                       (topology / "core_id").read_text().strip()))
    except OSError:
        return len(allowed)
    return len(pairs)


def _matmul_gflops(threads: int, seconds: float) -> tuple[float, float]:
    """(sustained, uninterrupted) GFLOP/s of float32 (M, K) @ (K, N) products with `threads` threads,
    run back to back for about `seconds` (at least 5 products) after one untimed product at the new
    count (the thread pool re-forms after a change): all work / wall time, and the rate of the fastest
    tenth of the timed products. With 1 thread each product runs, and is timed, as _BLOCK-row blocks."""
    torch.set_num_threads(threads)
    rows = _BLOCK if threads == 1 else _M
    a, b = torch.randn(_M, _K), torch.randn(_K, _N)
    out = torch.empty(_M, _N)
    torch.matmul(a, b, out=out)
    times: list[float] = []
    start = stop = time.perf_counter()
    while len(times) < 5 * _M // rows or stop < start + seconds:
        for i in range(0, _M, rows):
            t = time.perf_counter()
            torch.matmul(a[i:i + rows], b, out=out[i:i + rows])
            stop = time.perf_counter()
            times.append(stop - t)
    flop = 2 * rows * _K * _N  # per timed product
    fast = sorted(times)[len(times) // 10]
    return flop * len(times) / (stop - start) / 1e9, flop / fast / 1e9
