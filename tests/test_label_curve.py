"""Label curves (experiments/label_curve.py) and the tables that compute them, with training stubbed by known
scores: which runs are made, with which labels and budgets, and what the table and picture show."""

from types import SimpleNamespace

import pytest

from nanofm.config import ConfigError
from nanofm.experiments import beto
from nanofm.experiments.label_curve import format_label_curve, label_curve, parse_counts


def test_counts_are_checked():
    # the bug it catches: a curve over unsorted or repeated counts, which the plot's x-axis would scramble
    assert parse_counts("50,500,2000") == (50, 500, 2000)
    for bad in ("500,50", "50,50", "0,5", "a,b", ""):
        with pytest.raises(ConfigError, match="label counts"):
            parse_counts(bad)


def test_known_points_are_reused_and_both_starts_of_a_point_train_alike():
    # the bugs it catches: a table cell trained twice (budget spent for nothing), the two starts swapped, or the two
    # runs of a point given different training times (a later run squeezed by an earlier one's overrun)
    calls, budgets = [], iter(["9s", "4s"])

    def run(scratch, n, length):
        calls.append((scratch, n, length))
        return n / 10 + (0 if scratch else 5)

    curve = label_curve((10, 100, 1000), run, "accuracy", budget=lambda: next(budgets), done=lambda: calls.append("done"),
                        known={(False, 100): (99.0, "20s")})
    assert calls == [(False, 10, "9s"), (True, 10, "9s"), "done", (True, 100, "20s"), (False, 1000, "4s"),
                     (True, 1000, "4s"), "done"]
    assert curve["points"][:2] == [{"labels": 10, "pretrained": 6.0, "scratch": 1.0, "budget": "9s"},
                                   {"labels": 100, "pretrained": 99.0, "scratch": 10.0, "budget": "20s"}]
    assert "| 100 | 99.00 | 10.00 | +89.00 | 20s |" in format_label_curve(curve, "x")


def test_beto_table_computes_its_curve_with_the_tables_recipe(tmp_path, monkeypatch):
    # the bug it catches: curve runs without the table's overrides (recipe, budget), a label count that is not
    # applied, or the table's own cell rerun
    made = []

    def finetune_and_score(run_dir, task_dir, scratch, out, overrides, progress=False, seed_offset=0):
        labels = int([o for o in overrides if o.startswith("data.labels=")][-1].partition("=")[2])
        made.append((task_dir.name, scratch, labels, "train.lr=1e-4" in overrides))
        return {"score": labels / 1000 + (0.0 if scratch else 0.25)}

    monkeypatch.setattr(beto, "finetune_and_score", finetune_and_score)
    monkeypatch.setattr(beto, "load_task", lambda d: SimpleNamespace(metric="accuracy", silver=False))
    result = beto.benchmark_beto(["runs/bert"], tmp_path, ["a", "b"], tmp_path / "out",
                                 ["data.labels=500", "train.lr=1e-4"], log=lambda _: None, progress=False,
                                 curve=(50, 500), curve_task="b")
    assert made[4:] == [("b", False, 50, True), ("b", True, 50, True)]  # after the 4 table runs; 500 is the table's
    assert [(p["labels"], p["pretrained"], p["scratch"]) for p in result["curve"]["points"]] == [
        (50, 30.0, 5.0), (500, 75.0, 50.0)]
    assert "Label curve on b" in (tmp_path / "out" / "table.md").read_text()
    with pytest.raises(ConfigError, match="curve-task"):
        beto.benchmark_beto(["runs/bert"], tmp_path, ["a"], tmp_path / "o2", curve=(5,), curve_task="zz")
