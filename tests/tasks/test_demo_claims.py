"""The demo's verdicts are computed from its figures, and runs that share a deadline end by it."""

import json

import pytest

from nanofm.experiments.demo_claims import NOT_RUN, NOT_SHOWN, SHOWN, claims_markdown, verdicts, write_claims
from nanofm.experiments.timeshare import TimeShare

PASSING = {
    "translation": {"bleu_rnn": 8.0, "bleu_transformer": 13.5, "test_sentences": 500},
    "bert": {"masked_accuracy": 21.0, "gains": {"pos": 6.0, "ner": 9.0, "areas": 4.5}, "labels": 500},
    "vision": {"scratch": 76.0, "mae_finetune": 78.5, "labels": 1000},
    "t2i": {"fidelity": 72.0, "verifier": 92.0, "captions": 200, "clip_top1": 80.0},
}


def _state(**changes) -> dict:
    parts = {p: {"figures": {**f, **changes.get(p, {})}, "budget_s": 300.0, "seconds": 290.0} for p, f in PASSING.items()}
    return {"parts": parts, "budget_s": 1800.0}


def test_every_bar_met_reads_shown():
    """Catches: a verdict that never says shown (bars compared the wrong way round)."""
    assert [v.verdict for v in verdicts(_state())] == [SHOWN] * 4


@pytest.mark.parametrize("part, change", [
    ("translation", {"bleu_transformer": 10.9}),  # beats the RNN by 2.9 only: the +3 margin is the bar
    ("translation", {"bleu_rnn": 1.0, "bleu_transformer": 11.9}),  # far ahead, but under 12 BLEU
    ("bert", {"masked_accuracy": 19.9}),  # the masked-LM plateau not left
    ("bert", {"gains": {"pos": 20.0, "ner": 9.0, "areas": -0.1}}),  # a mean of +9.6, but one task lost
    ("bert", {"gains": {"pos": 4.0, "ner": 5.0, "areas": 5.5}}),  # every task won, mean +4.8 < +5
    ("bert", {"gains": {}}),  # no table at all is no evidence
    ("vision", {"mae_finetune": 77.9}),  # +1.9 points
    ("t2i", {"verifier": 89.0}),  # a fidelity measured with a judge that is too often wrong
    ("t2i", {"captions": 50}),  # too few captions
    ("t2i", {"clip_top1": 69.0}),
    ("t2i", {"fidelity": 69.9}),
])
def test_a_missed_bar_reads_not_shown(part, change):
    """Each bar's edge, one at a time: a table where a claim fails says 'not shown', and only for its part.
    Catches: a missing condition, >= written as >, the mean taken for the minimum, figures of one part
    judging another."""
    got = {v.part: v.verdict for v in verdicts(_state(**{part: change}))}
    assert got[part] == NOT_SHOWN
    assert all(verdict == SHOWN for p, verdict in got.items() if p != part)


def test_parts_not_run_and_the_files_for_scripts(tmp_path):
    """A part without figures is 'not run', not a failure; claims.json carries each verdict with its figures,
    bar, budget and time, and the Markdown table one row per claim. Catches: a crash on a partial demo, a
    claims.json missing the numbers a script needs."""
    state = _state()
    del state["parts"]["t2i"]
    assert verdicts(state)[-1].verdict == NOT_RUN
    data = json.loads(write_claims(tmp_path, state).read_text())
    by_part = {c["part"]: c for c in data["claims"]}
    assert by_part["vision"]["figures"]["mae_finetune"] == 78.5 and by_part["vision"]["seconds"] == 290.0
    assert by_part["vision"]["verdict"] == SHOWN and "+2.50 points" in by_part["vision"]["figure"]
    assert by_part["t2i"]["verdict"] == NOT_RUN and data["budget_s"] == 1800.0
    table = claims_markdown(state)
    assert table.count("\n| ") == 4 and "| **shown** |" in table and "| not run |" in table


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_runs_share_what_is_left_and_the_last_ends_by_the_deadline():
    """Three equal runs before a deadline 100 s away, 10 s kept for after them. The first overruns by 15 s
    (a slow evaluation): the measured overhead is set aside for each run still to come, so the last one
    still ends by the deadline. Catches: budgets fixed up front (the overrun makes the part late), the
    reserve or the overhead ignored, an overhead guess never replaced by the measured one."""
    clock = _Clock()
    share = TimeShare(100.0, [1, 1, 1], reserve=10.0, overhead=1.0, clock=clock)
    first = share.start()
    assert first == pytest.approx((100 - 10 - 3 * 1.0) / 3)
    clock.t += first + 15.0  # trained its budget, then 15 s more
    share.finish()
    assert share.overhead == pytest.approx(15.0)
    for _ in range(2):
        b = share.start()
        clock.t += b + 15.0  # every run overruns as much
        share.finish()
    assert clock.t <= 100.0 - 10.0 + 1e-9  # the reserve is still there for the work after the runs
    with pytest.raises(IndexError):
        share.start()


def test_weights_split_the_time():
    """MAE pretraining (0.5) and fine-tuning (0.5) together get what the scratch run (1) got. Catches: weights
    taken over all runs instead of those still to come."""
    clock = _Clock()
    share = TimeShare(40.0, [1.0, 0.5, 0.5], overhead=0.0, clock=clock)
    budgets = []
    for _ in range(3):
        budgets.append(share.start())
        clock.t += budgets[-1]
        share.finish()
    assert budgets == pytest.approx([20.0, 10.0, 10.0]) and clock.t == pytest.approx(40.0)


def test_a_share_of_two_runs_sets_aside_two_overheads():
    """A label-curve point trains two runs from one share: each costs the overhead. One single run, then a pair,
    each run 10 s beyond its budget: the pair's share is sized with two overheads set aside, so it still ends by
    the deadline, and the overhead measured on it is per run. Catches: one overhead set aside for a pair (the
    last point overran: the demo's vision part took 113% of its share under load), a pair's overhead taken
    for one run's (every later share sized too small)."""
    clock = _Clock()
    share = TimeShare(100.0, [1.0, 1.0], overhead=10.0, clock=clock, runs=[1, 2])
    first = share.start()
    assert first == pytest.approx((100 - 3 * 10.0) / 2)
    clock.t += first + 10.0
    share.finish()
    pair = share.start()
    clock.t += pair + 2 * 10.0  # both runs of the point, each 10 s beyond its half
    share.finish()
    assert clock.t == pytest.approx(100.0) and share.overhead == pytest.approx(10.0)
    with pytest.raises(ValueError, match="one count >= 1 per weight"):
        TimeShare(100.0, [1.0, 1.0], runs=[1])
