"""The machine probe: the thread count that is fastest under load, the busy verdict, /proc/stat arithmetic."""

import torch

from nanofm.engine.machine import busy_cores_between, probe, thread_candidates


def fixed(rates: dict[int, float], per_core: float | None = None):
    """An injected measurement: sustained GFLOP/s per thread count, whatever the time given; the
    uninterrupted rate is `per_core` x threads (default: the sustained 1-thread rate)."""
    per_core = rates[1] if per_core is None else per_core
    return lambda threads, seconds: (rates[threads], per_core * threads)


def test_busy_machine_picks_one_thread_and_says_so():
    # One other process spinning on a 2-core machine: 2 threads stall on each other, far slower than 1.
    p = probe(0.0, measure=fixed({1: 75.0, 2: 8.4}), read_stat=lambda: None, cpus=2)
    assert p.best_threads == 1, "picks the largest or the default thread count instead of the fastest"
    assert p.gflops == 75.0 and p.per_core_gflops == 75.0
    # expected = 75 x 2 cores, measured best 75: 2x. Catches a slowdown taken against the slow count.
    assert abs(p.slowdown - 2.0) < 1e-9
    assert p.busy, "a 2x shortfall against idle scaling is not reported as busy"
    msg = p.message()
    assert msg is not None and msg.startswith("the machine is busy:"), "busy machine but no message"
    assert "2.0x below the expected speed" in msg and "using 1 thread;" in msg, msg
    assert "results will be weaker" in msg
    assert "other processes" not in msg, "claims a process count although /proc/stat was unreadable"
    assert p.busy_cores is None, "a missing /proc/stat must give None, not 0 (which would read as idle)"


def test_idle_machine_uses_every_core_and_stays_quiet():
    # Idle 4-core machine: near-linear scaling (4 threads at 3.7x one).
    rates = {1: 50.0, 2: 95.0, 4: 185.0}
    p = probe(0.0, measure=fixed(rates), read_stat=lambda: None, cpus=4)
    assert thread_candidates(4) == [1, 2, 4]
    assert p.best_threads == 4, "an idle machine must use all its cores"
    assert not p.busy, "imperfect but normal scaling (1.08x) flagged as busy: a false alarm every run"
    assert p.message() is None, "a message on an idle machine"
    assert abs(p.slowdown - 200 / 185) < 1e-9


def test_every_core_held_shows_in_one_threads_sustained_rate():
    # Two spinners on 2 cores: one thread runs at 90 GFLOP/s between time slices but sustains only 60.
    p = probe(0.0, measure=fixed({1: 60.0, 2: 20.0}, per_core=90.0), read_stat=lambda: None, cpus=2)
    assert p.best_threads == 1 and p.per_core_gflops == 90.0
    # expected 90 x 2 = 180 against 60: 3x. Catches a slowdown computed from the sustained 1-thread
    # rate (which would hide the load that slows even one thread: 60 x 2 / 60 = 2x).
    assert abs(p.slowdown - 3.0) < 1e-9 and p.busy


def test_near_tie_prefers_fewer_threads():
    # 2 threads only 2% faster than 1: within noise, the count that suffers less from load changes wins.
    p = probe(0.0, measure=fixed({1: 100.0, 2: 102.0}), read_stat=lambda: None, cpus=2)
    assert p.best_threads == 1, "a 2% gain, within noise, buys a thread count that collapses under load"


def test_thread_candidates():
    assert thread_candidates(1) == [1]
    assert thread_candidates(6) == [1, 2, 4, 6], "the CPU count itself is not measured"
    assert thread_candidates(512) == [1, 2, 4, 8, 16, 32, 64, 512], "more than 8 counts: a probe far over its time"


def test_busy_cores_alone_makes_the_machine_busy():
    # Two snapshots: cpu0 fully busy (another process), cpu1 idle; this process used nothing.
    before = STAT.format(u=1200, i=1500, u0=1000, i0=500, u1=200, i1=1000)
    after = STAT.format(u=1300, i=1600, u0=1100, i0=500, u1=200, i1=1100)
    stats, wall = iter([before, after]), iter([0.0, 1.0])
    p = probe(0.0, measure=fixed({1: 50.0, 2: 95.0}), read_stat=lambda: next(stats), cpus=2,
              clock=lambda: next(wall), own_cpu=lambda: 0.0)
    assert abs(p.busy_cores - 1.0) < 1e-9
    assert p.busy, "one core held by another process but the probe says idle"
    assert "other processes use ~1.0 of 2 cores" in p.message()


STAT = """cpu  {u} 0 0 {i} 0 0 0 0 0 0
cpu0 {u0} 0 0 {i0} 0 0 0 0 0 0
cpu1 {u1} 0 0 {i1} 0 0 0 0 0 0
intr 1 2 3
ctxt 5
procs_running 2
"""


def test_proc_stat_arithmetic():
    # Two snapshots 1 s apart on 2 CPUs (fields: user nice system idle iowait irq softirq steal guest guest_nice).
    before = """cpu  300 10 40 900 50 0 0 0 0 0
cpu0 100 10 20 400 20 0 0 0 0 0
cpu1 200 0 20 500 30 0 0 0 0 0
procs_running 1
"""
    after = """cpu  430 10 80 940 70 0 10 0 30 0
cpu0 160 10 30 410 30 0 10 0 0 0
cpu1 270 0 50 530 40 0 0 0 30 0
procs_running 3
"""
    # cpu0: user +60, system +10, softirq +10 = 80 busy; idle +10, iowait +10 (not busy) -> 100 in all.
    # cpu1: user +70, system +30 = 100 busy; idle +30, iowait +10 -> 140 in all. Its guest +30 is already
    #       inside user, so it must not count again.
    # In use: 2 CPUs x (80 + 100) / (100 + 140) = 1.5 cores; this process used 0.4 -> others 1.1.
    got = busy_cores_between(before, after, own_seconds=0.4, wall_seconds=1.0)
    assert abs(got - 1.1) < 1e-9, "guest time counted twice, iowait counted as busy, or own time not subtracted"
    # Only the CPUs this process may use: cpu1 alone -> 100/140 cores in use, minus own 0.4.
    got1 = busy_cores_between(before, after, own_seconds=0.4, wall_seconds=1.0, cpus={1})
    assert abs(got1 - (100 / 140 - 0.4)) < 1e-9, "counts the load of CPUs this process cannot run on"
    # Own time larger than measured use (clock-tick rounding): clamp at 0, never negative.
    assert busy_cores_between(before, after, own_seconds=5.0, wall_seconds=1.0) == 0.0
    # Aggregate line only (some containers): falls back to it.
    def aggregate_only(text):
        return "\n".join(line for line in text.splitlines() if not line.startswith(("cpu0", "cpu1")))

    got_agg = busy_cores_between(aggregate_only(before), aggregate_only(after), own_seconds=0.4,
                                 wall_seconds=1.0, cpus={0, 1})
    assert abs(got_agg - 1.1) < 1e-9, "the aggregate-line fallback disagrees with the per-CPU sum"
    assert busy_cores_between("intr 1\n", "intr 2\n", own_seconds=0, wall_seconds=1) is None


def test_real_quick_probe_restores_threads():
    original = torch.get_num_threads()
    # Start from 1 thread, so that the last count measured (the CPU count) differs from it when cpus > 1.
    torch.set_num_threads(1)
    try:
        p = probe(0.3)
        assert torch.get_num_threads() == 1, "the probe leaves torch at its last measured thread count"
        assert p.gflops > 0 and p.per_core_gflops > 0, "no throughput measured"
        assert 1 <= p.best_threads <= p.cpus and p.gflops == p.gflops_by_threads[p.best_threads]
        assert p.slowdown > 0
        assert p.busy_cores is None or p.busy_cores >= 0
        assert p.apply() == 1, "apply() does not return the previous count"
        assert torch.get_num_threads() == p.best_threads, "apply() does not set the thread count"
    finally:
        torch.set_num_threads(original)
