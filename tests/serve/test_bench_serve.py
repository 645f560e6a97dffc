"""bench/serve.py runs (--quick: tiny models, a few requests) and prints its table; no timing is asserted."""

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_bench_serve_quick_prints_the_table(tmp_path):
    # the bug it catches: a benchmark script broken by a change to the server (it is run by hand, rarely)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NANOFM_BENCH_RESULTS": str(tmp_path)}
    env.pop("NANOFM_BENCH_NOTE", None)
    proc = subprocess.run([sys.executable, "serve.py", "--quick"], cwd=BENCH, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 2 * 2 * 3  # header + 2 models x batching on/off x 1, 8, 32 clients
    assert all(row.rstrip(" |").endswith(" 0") for row in rows[1:]), rows  # no errors
    assert "bar (32 clients" in proc.stdout and len(list(tmp_path.glob("serve-*.txt"))) == 1
