"""Where training reports go: metrics.jsonl in the run folder, TensorBoard when it is installed."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Callable

from nanofm.errors import DataError


def to_stderr(message: str) -> None:
    """The default `warn` of readers that skip something broken: one line on standard error."""
    print(message, file=sys.stderr)


def read_metrics(path: Path, warn: Callable[[str], None] = to_stderr) -> list[dict[str, Any]]:
    """Records of a metrics.jsonl. A torn last line (the process was killed while writing it) is skipped,
    said in one line to `warn`; a malformed line before it is an error naming the file and line."""
    if not path.exists():
        return []
    lines = [(i, line) for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if line.strip()]
    records = []
    for i, line in lines:
        try:
            records.append(_record(line))
        except ValueError as e:
            if i != lines[-1][0]:
                raise DataError(f"{path}:{i}: not a JSON record ({e})") from None
            warn(f"{path}:{i}: skipping a torn last line ({e}); the run was stopped while writing it")
    return records


def _record(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(e.msg) from None
    if not isinstance(record, dict):
        raise ValueError("not a JSON object")
    return record


class MetricsLog:
    """Appends one JSON record per line (flushed at once); mirrors numbers to TensorBoard if available."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        if resume_step is not None:  # drop what a crashed run logged past the checkpoint we resume from
            kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= resume_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tensorboard"))
            except ImportError:  # tensorboard not installed: JSON lines only
                pass

    def log(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = record.get("step", 0)
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
