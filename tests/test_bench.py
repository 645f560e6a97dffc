"""The benchmark scripts run (tiny sizes, --quick) and print their table; no timing is asserted."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _run(*args: str) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, *args], cwd=BENCH, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_run_all_quick_prints_one_table():
    pytest.importorskip("transformers")
    out = _run("run_all.py", "--quick", "--repeats", "1")
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 6, out  # header + BERT MLM, BERT inference, ViT train / inference, translation, decoding
    assert all(row.count("|") == 8 for row in rows)


def test_gpu_suite_and_ablations_run_on_the_cpu():
    pytest.importorskip("transformers")
    out = _run("run_all.py", "--suite", "gpu", "--device", "cpu", "--quick", "--repeats", "1")
    assert "MLM train step" in out and "ViT train step" in out
    out = _run("ablations.py", "--quick", "--repeats", "1")
    assert "explicit attention" in out and "packed rows" in out
