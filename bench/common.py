"""Shared timing for the side-by-side benchmarks: one Case = a nanofm call and a reference call doing the
same work; `compare` warms both up, alternates them (with a matrix-product probe) for `repeats` rounds,
and reports medians, model FLOPs utilisation and peak memory.

    rate      work units per second (tokens/s, images/s), median of the repeats
    MFU       FLOPs of nanofm's call (counted once, by torch's FlopCounterMode plus SDPA on the CPU)
              / seconds per call / the matrix-product rate measured in the same rounds. The reference's MFU
              uses the SAME FLOP count (the work the task needs), so skipping work cannot inflate either.
    memory    training cases: the peak resident memory a call adds over the memory before the model was
              built (weights, gradients, optimizer state and activations), sampled every 0.2 ms after
              malloc_trim; on CUDA, torch.cuda.max_memory_allocated over the same span.

Every script takes --quick (tiny sizes, seconds), --repeats, --device (cpu / cuda) and --dtype (float32 /
bfloat16); run_all.py gathers every case into one Markdown table.

Every script's run is recorded (`recorded` below): what it prints, stdout and stderr, is also written to
bench/results/<script>-<YYYYMMDD-HHMM>.txt, headed by the command line, the date, the machine and its load
average, the package versions and the git commit, and closed by the wall time, the process's CPU time and
the load average at the end. NANOFM_BENCH_RESULTS=DIR records elsewhere (the tests use a temporary folder);
NANOFM_BENCH_NOTE="..." adds a line to the header (say, what else was running).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode

Step = Callable[[], object]


@dataclass
class Case:
    name: str  # table row, e.g. "BERT-mini MLM train step"
    unit: str  # "tokens/s", "images/s", "s" (lower is better for "s")
    work: float  # work units per call (tokens, images); for unit "s": 1
    make_ours: Callable[[], Step]  # builds the nanofm model, returns one call (a training step, a forward)
    make_ref: Callable[[], Step]
    ref_name: str  # "transformers BertForMaskedLM", ...
    training: bool = True  # report peak memory
    flops: float | None = None  # FLOPs of one nanofm call; None: counted on the first call
    notes: list[str] = field(default_factory=list)
    check: Callable[[], None] | None = None  # run after the timing: both sides gave the same answer


@dataclass
class Result:
    case: Case
    ours: float  # median seconds per call
    ref: float
    ceiling: float  # median matrix-product FLOP/s in the same rounds
    flops: float
    mem_ours: float | None = None  # bytes
    mem_ref: float | None = None

    @property
    def ratio(self) -> float:
        return self.ref / self.ours

    def rate(self, seconds: float) -> float:
        return seconds if self.case.unit == "s" else self.case.work / seconds

    def mfu(self, seconds: float) -> float:
        return self.flops / seconds / self.ceiling


def parse_args(description: str = "", extra: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny sizes, 2 repeats: a smoke test in seconds")
    p.add_argument("--repeats", type=int, default=None, help="alternated rounds (default 7, 2 with --quick)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: autocast for both sides (the GPU runs)")
    p.add_argument("--only", default=None, help="run only the cases whose name contains this")
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 7
    args.device = torch.device(args.device)
    args.dtype = getattr(torch, args.dtype)
    return args


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: torch.dtype):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32)


def timed(fn: Step, device: torch.device) -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


# ---------------------------------------------------------------------- the matrix-product ceiling


def matmul_probe(device: torch.device, dtype: torch.dtype, n: int = 2048) -> Callable[[], float]:
    """A callable returning the FLOP/s of one (n x n) @ (n x n) product in `dtype` (a few on CUDA)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    reps = 20 if device.type == "cuda" else 1

    def probe() -> float:
        sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        sync(device)
        return 2 * n**3 * reps / (time.perf_counter() - t)

    probe()
    return probe


# ---------------------------------------------------------------------- FLOPs


def _sdpa_cpu_flops(query, key, value, *args, **kwargs) -> int:
    return flop_counter.sdpa_flop_count(query, key, value)


def _sdpa_cpu_backward_flops(grad_out, query, key, value, *args, **kwargs) -> int:
    return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)


class _FlopCount(TorchDispatchMode):
    """Sums torch's FLOP formulas over the ops a call dispatches (FlopCounterMode without its module
    tracker, which fails on parameter views under no_grad)."""

    def __init__(self, formulas):
        super().__init__()
        self.formulas, self.total = formulas, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = self.formulas.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count_flops(fn: Step) -> float:
    """FLOPs of one call: matrix products, convolutions and attention (torch's counter misses the CPU SDPA
    kernel, so it is added here with torch's own formula). Elementwise work is not counted, as usual for MFU."""
    formulas = dict(flop_counter.flop_registry)
    formulas[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu] = flop_counter.shape_wrapper(_sdpa_cpu_flops)
    formulas[torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward] = flop_counter.shape_wrapper(
        _sdpa_cpu_backward_flops)
    with _FlopCount(formulas) as counter:
        fn()
    return float(counter.total)


# ---------------------------------------------------------------------- memory


_libc = ctypes.CDLL("libc.so.6") if os.name == "posix" else None


def _trim() -> None:
    gc.collect()
    if _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Highest resident set size seen while the block runs (a thread samples /proc/self/statm)."""

    def __enter__(self):
        self.peak, self._stop = _rss(), threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss())
            time.sleep(0.0002)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def build_measuring_memory(make: Callable[[], Step], device: torch.device) -> tuple[Step, float]:
    """Build a model's call and run it twice (the first allocates gradients and optimizer state); returns
    the call and the peak memory it added over the memory before the build."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn = make()
        fn(), fn()
        torch.cuda.synchronize(device)
        return fn, float(torch.cuda.max_memory_allocated(device) - base)
    _trim()
    base = _rss()
    fn = make()
    with PeakRSS() as first:
        fn()
    _trim()  # free pages left over by the first call must be faulted in again to count
    with PeakRSS() as second:
        fn()
    return fn, float(max(first.peak, second.peak) - base)


# ---------------------------------------------------------------------- the comparison


def compare(case: Case, repeats: int, device: torch.device, dtype: torch.dtype = torch.float32, warmup: int = 2,
            ceiling_n: int = 2048) -> Result:
    """Build both sides (measuring memory), warm them up, then `repeats` rounds of: nanofm, reference,
    matrix-product probe; medians of each."""
    torch.manual_seed(0)
    # nanofm is built first: one-time costs of the process (thread pools, allocator) count against it
    ours, mem_ours = build_measuring_memory(case.make_ours, device)
    ref, mem_ref = build_measuring_memory(case.make_ref, device)
    flops = case.flops if case.flops is not None else count_flops(ours)
    for _ in range(warmup):
        ours(), ref()
    probe = matmul_probe(device, dtype, ceiling_n)
    t_ours, t_ref, rates = [], [], []
    for r in range(repeats):
        pair = [(ours, t_ours), (ref, t_ref)]
        for fn, times in pair if r % 2 == 0 else pair[::-1]:  # alternate which goes first
            times.append(timed(fn, device))
        rates.append(probe())
    if case.check is not None:
        case.check()
    res = Result(case, statistics.median(t_ours), statistics.median(t_ref), statistics.median(rates), flops,
                 mem_ours if case.training else None, mem_ref if case.training else None)
    del ours, ref
    _trim()
    return res


def fmt_rate(res: Result, seconds: float) -> str:
    if res.case.unit == "s":
        return f"{seconds:.3f} s"
    return f"{res.rate(seconds):,.0f} {res.case.unit}"


def fmt_mem(b: float | None) -> str:
    return "" if b is None else f"{b / 2**20:,.0f} MiB"


def table(results: list[Result]) -> str:
    head = ("| case | nanofm | reference | ratio | MFU nanofm (ref) | peak memory nanofm / ref | reference model |\n"
            "|---|---:|---:|---:|---:|---:|---|")
    rows = [head]
    for r in results:
        mem = f"{fmt_mem(r.mem_ours)} / {fmt_mem(r.mem_ref)}" if r.mem_ours is not None else ""
        mfu = f"{100 * r.mfu(r.ours):.0f}% ({100 * r.mfu(r.ref):.0f}%)" if r.flops else ""
        rows.append(f"| {r.case.name} | {fmt_rate(r, r.ours)} | {fmt_rate(r, r.ref)} | {r.ratio:.2f}x | {mfu} | {mem} | "
                    f"{r.case.ref_name} |")
    return "\n".join(rows)


def run_cases(cases: list[Case], args: argparse.Namespace) -> list[Result]:
    """Run the cases one after the other, printing each result line as it comes, then the table."""
    results = []
    for case in cases:
        if args.only and args.only.lower() not in case.name.lower():
            continue
        n = 512 if args.quick else 8192 if args.device.type == "cuda" else 2048
        res = compare(case, args.repeats, args.device, args.dtype, ceiling_n=n)
        print(f"# {case.name}: nanofm {res.ours * 1e3:.1f} ms, reference {res.ref * 1e3:.1f} ms, {res.ratio:.2f}x, "
              f"{res.flops / 1e9:.1f} GFLOP, ceiling {res.ceiling / 1e9:.0f} GFLOP/s", flush=True)
        results.append(res)
    return results


def main_for(make_cases: Callable[[argparse.Namespace], list[Case]], description: str,
             extra: Callable[[argparse.ArgumentParser], None] | None = None) -> list[Result]:
    args = parse_args(description, extra)
    with recorded():
        torch.manual_seed(0)
        results = run_cases(make_cases(args), args)
        print(table(results))
    return results


# ---------------------------------------------------------------------- the record of a run


REPO = Path(__file__).resolve().parents[1]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def machine() -> str:
    """CPU model, cores, torch's threads and the load average now (1, 5 and 15 minutes)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    omp = os.environ.get("OMP_NUM_THREADS")
    return (f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
            f"{f' (OMP_NUM_THREADS={omp})' if omp else ''}, load average {load_average()}")


def versions() -> str:
    parts = [f"python {platform.python_version()}", f"torch {torch.__version__}"]
    for name in ("transformers", "numpy", "nanofm"):
        try:
            parts.append(f"{name} {__import__(name).__version__}")
        except Exception:  # noqa: BLE001 - a missing package is only left out of the line
            pass
    try:
        def git(*a: str) -> str:
            return subprocess.run(["git", "-C", str(REPO), *a], capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        dirty = git("status", "--porcelain", "--untracked-files=no")
        parts.append(f"git {git('rev-parse', '--short=12', 'HEAD')}{' + uncommitted changes' if dirty else ''}")
    except Exception:  # noqa: BLE001 - no git, or not a checkout
        pass
    return ", ".join(parts)


def command_line() -> str:
    script = Path(sys.argv[0]).resolve()
    with contextlib.suppress(ValueError):
        script = script.relative_to(REPO)
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS",) if k in os.environ)
    cmd = shlex.join(["python", str(script), *sys.argv[1:]])
    return (f"{env} " if env else "") + cmd + (" (under make)" if "MAKELEVEL" in os.environ else "")


class _Tee:
    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for s in self.streams:
            s.write(text)
        return len(text)

    def flush(self) -> None:
        for s in self.streams:
            s.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def recorded(name: str | None = None) -> Iterator[Path]:
    """Print a header (command, date, machine and load, versions), then tee everything the block prints
    (stdout and stderr) into bench/results/<name>-<YYYYMMDD-HHMM>.txt; a footer gives the wall time, the
    process's CPU time and the load average at the end (or the error that stopped the run)."""
    name = name or Path(sys.argv[0]).stem
    folder = Path(os.environ.get("NANOFM_BENCH_RESULTS") or REPO / "bench" / "results")
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now().astimezone()
    path = folder / f"{name}-{now:%Y%m%d-%H%M}.txt"
    n = 2
    while path.exists():  # two runs in one minute
        path, n = folder / f"{name}-{now:%Y%m%d-%H%M}-{n}.txt", n + 1
    shown = path
    with contextlib.suppress(ValueError):
        shown = path.relative_to(REPO)
    with open(path, "w", encoding="utf-8") as f:
        out, err = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(out, f), _Tee(err, f)
        t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        status = "finished"
        try:
            print(f"# command: {command_line()}")
            print(f"# date: {now.isoformat(timespec='seconds')}")
            print(f"# machine: {machine()} (at the start)")
            print(f"# versions: {versions()}")
            if os.environ.get("NANOFM_BENCH_NOTE"):
                print(f"# note: {os.environ['NANOFM_BENCH_NOTE']}")
            print(f"# recorded in {shown}", flush=True)
            yield path
        except BaseException as e:
            status = f"stopped by {type(e).__name__}: {e}"
            raise
        finally:
            wall = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            print(f"# {status}: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}, {wall:.0f} s wall, "
                  f"{cpu:.0f} s CPU time in this process ({cpu / max(wall, 1e-9):.2f} cores on average), "
                  f"load average at the end {load_average()}", flush=True)
            sys.stdout, sys.stderr = out, err
