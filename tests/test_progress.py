"""Progress bars: tqdm on a terminal, a plain periodic heartbeat line anywhere else."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch
from tqdm import tqdm

from nanofm.core.output import ModelOutput
from nanofm.errors import UserError
from nanofm.progress import Heartbeat, progress_bar


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_heartbeat_prints_plain_lines_at_most_once_per_interval_and_a_last_line():
    clock, log = FakeClock(), io.StringIO()
    bar = progress_bar(total=5000, desc="train", unit="step", file=log, every=30, clock=clock)
    # a non-terminal stream gets the heartbeat, not tqdm (whose redraws fill a log with '\r' clutter)
    assert isinstance(bar, Heartbeat)
    for _ in range(100):  # 100 updates inside the first interval: silence (catches a line per update)
        clock.now += 0.1
        bar.update(1)
    assert lines(log) == []
    for _ in range(1100):  # 1100 more over 110 s: a line at 30, 60, 90, 120 s only (catches no rate limit)
        clock.now += 0.1
        bar.update(1)
    assert len(lines(log)) == 3
    clock.now += 1.0
    bar.set_postfix({"loss": "3.21"})
    bar.update(0)  # at 121 s: the 4th interval is due
    # the exact line: count, percent, elapsed, estimate from the rate so far, postfix (catches a wrong estimate
    # or percent, and tqdm's own bar text leaking in)
    assert lines(log)[-1] == "train: 1200/5000 steps (24%), 2:01 elapsed, ~6:23 left, loss 3.21"
    bar.close()
    bar.close()  # closing twice (the Trainer does) says nothing more: catches a doubled last line
    assert lines(log)[-1] == "train: 1200/5000 steps (24%), 2:01 elapsed, ended early, loss 3.21"
    assert len(lines(log)) == 5
    assert "\r" not in log.getvalue()  # catches carriage returns in non-interactive output


def test_heartbeat_last_line_says_done_and_only_a_leaving_or_spoken_bar_prints_it():
    clock, log = FakeClock(), io.StringIO()
    with progress_bar(range(10), desc="decoding", unit="sentence", file=log, every=30, clock=clock) as bar:
        assert list(bar) == list(range(10))  # iteration passes every item (catches a dropped or doubled item)
    # a short job prints one last line, and iterating to the end closes it once (catches none, or two)
    assert lines(log) == ["decoding: 10/10 sentences (100%), 0:00 elapsed, done"]

    quiet = io.StringIO()
    inner = progress_bar(total=4, desc="sampling", unit="step", leave=False, file=quiet, every=30, clock=clock)
    inner.update(4)
    inner.close()
    # leave=False (an inner bar, e.g. each diffusion sampling) over before the interval stays silent:
    # catches a last line per inner loop flooding the log
    assert quiet.getvalue() == ""


def test_heartbeat_accepts_what_the_trainer_does_to_its_bar():
    """The Trainer starts with no total (budget mode), sets `bar.total` and calls refresh() once the step
    time is measured, resumes from `initial`: catches an AttributeError there, and an estimate taken from
    the steps done before the resume."""
    clock, log = FakeClock(), io.StringIO()
    bar = progress_bar(total=None, initial=100, desc="train", unit="step", file=log, every=10, clock=clock)
    clock.now += 10
    bar.update(10)
    assert lines(log) == ["train: 110 steps, 0:10 elapsed"]  # no total yet: no percent, no estimate
    bar.total = 210
    bar.refresh()
    bar.set_postfix({"loss": "1.5000", "lr": "1.00e-03"}, refresh=False)
    clock.now += 10
    bar.update(10)
    assert lines(log)[-1] == "train: 120/210 steps (57%), 0:20 elapsed, ~1:30 left, loss 1.5000, lr 1.00e-03"


def test_environment_sets_the_interval_and_zero_turns_it_off(monkeypatch):
    clock = FakeClock()
    monkeypatch.setenv("NANOFM_HEARTBEAT_S", "5")
    log = io.StringIO()
    bar = progress_bar(total=10, desc="x", file=log, clock=clock)
    clock.now += 5
    bar.update(1)
    assert len(lines(log)) == 1  # catches NANOFM_HEARTBEAT_S ignored (the default 30 s would be silent here)

    monkeypatch.setenv("NANOFM_HEARTBEAT_S", "0")
    off = io.StringIO()
    bar = progress_bar(total=10, desc="x", file=off, clock=clock)
    clock.now += 100
    bar.update(10)
    bar.close()
    assert off.getvalue() == ""  # catches 0 read as "every update" instead of "off"

    monkeypatch.setenv("NANOFM_HEARTBEAT_S", "soon")
    with pytest.raises(UserError, match="NANOFM_HEARTBEAT_S='soon'"):  # catches a bad value silently ignored
        progress_bar(total=10, file=io.StringIO())


def test_a_terminal_gets_a_tqdm_bar_and_disabled_bars_are_silent():
    term = Terminal()
    bar = progress_bar(total=3, desc="train", file=term)
    # catches the heartbeat replacing the live bar on a terminal
    assert isinstance(bar, tqdm) and not bar.disable
    bar.update(3)
    bar.close()
    assert "3/3" in term.getvalue()

    off = io.StringIO()
    bar = progress_bar(range(3), total=3, desc="train", enabled=False, file=off)
    assert list(bar) == [0, 1, 2]  # a disabled bar still iterates (catches an empty loop when progress is off)
    bar.total = 5
    bar.refresh()
    bar.set_postfix({"loss": "1"})
    bar.close()
    assert off.getvalue() == ""  # catches output when progress is off


def test_trainer_output_to_a_log_has_no_carriage_returns(capsys):
    """A Trainer with progress on, writing to a non-terminal stderr (here captured), prints heartbeat lines
    and its last line: catches the Trainer still making a raw tqdm bar (carriage returns in the log)."""
    from nanofm.engine import TrainConfig, Trainer

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(2))

        def forward(self, x):
            return ModelOutput(loss=(x @ self.w).pow(2).mean())

    data = [{"x": torch.randn(2)} for _ in range(8)]
    cfg = TrainConfig(steps=3, batch_size=4, lr=0.01, warmup_steps=0, eval_every=0, best_metric=None, log_every=1)
    Trainer(Tiny(), data, cfg, collate=lambda ex: {"x": torch.stack([e["x"] for e in ex])}, progress=True).fit()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert "train: 3/3 steps (100%)" in err and "done" in err


def test_test_set_decoding_shows_progress_only_when_asked(monkeypatch, capsys):
    """translate_ids with progress=True over more than a few batches prints the decoding bar's line; the
    library default stays quiet. Catches `progress` not reaching the bar, and bars in library calls."""
    from nanofm.families.seq2seq import translation

    monkeypatch.setattr(translation, "greedy_search", lambda model, src, limit: torch.zeros(len(src), 3, dtype=torch.long))
    model = torch.nn.Linear(1, 1)
    sources = [torch.tensor([5, 2])] * 10
    translation.translate_ids(model, sources, pad_id=0, batch_size=2)
    assert capsys.readouterr().err == ""
    outs = translation.translate_ids(model, sources, pad_id=0, batch_size=2, progress=True)
    assert len(outs) == 10
    assert "decoding (greedy): 10/10 sentences (100%)" in capsys.readouterr().err


def test_benchmark_beto_counts_its_runs(monkeypatch, capsys, tmp_path):
    """The per-run bar of `benchmark beto` ends at (tasks x columns x seeds) runs, and its messages still
    reach stdout. Catches a bar that miscounts or is never moved."""
    from nanofm.experiments import beto as benchmark

    monkeypatch.setattr(benchmark, "load_task", lambda d: SimpleNamespace(metric="accuracy", silver=False))
    monkeypatch.setattr(benchmark, "finetune_and_score", lambda *a, **kw: {"score": 0.5})
    benchmark.benchmark_beto(["runs/bert"], tmp_path, ["a", "b"], tmp_path / "out", seeds=2)
    out, err = capsys.readouterr()
    assert "benchmark beto: 8/8 runs (100%)" in err
    assert "== a: bert (pretrained), seed 0 (1 of 2)" in out
