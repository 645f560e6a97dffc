"""The run's state a checkpoint holds beside the weights and the optimizer: step counters, the best metric, the
partial loss window of the step being accumulated, and every random generator, as plain data
(`state_dict()` / `load_state_dict()`), so that a resumed run is bit-identical to an uninterrupted one on CPU."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class RunState:
    step: int = 0  # optimizer steps done (skipped non-finite steps included)
    micro: int = 0  # micro-batches of the current step already accumulated
    total_steps: int | None = None  # the run's length (None: a budget run before its first step time is measured)
    skipped_steps: int = 0
    consecutive_bad: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"metric": None, "value": None, "checkpoint": None})
    window: torch.Tensor = field(default_factory=lambda: new_window(torch.device("cpu")))  # (2,): loss * weight, weight
    elapsed: float = 0.0  # training seconds before this process (resumed runs)
    last_metrics: dict[str, float] = field(default_factory=dict)  # the latest evaluation, made at last_metrics_step
    last_metrics_step: int | None = None

    def is_better(self, metrics: dict[str, float], name: str | None, mode: str) -> bool:
        """Whether `metrics` beat the best so far on metric `name` ("min" or "max"; no name: never)."""
        value, best = metrics.get(name or "", float("nan")), self.best["value"]
        if value != value or value in (float("inf"), float("-inf")):
            return False
        return best is None or (value < best if mode == "min" else value > best)

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "micro": self.micro, "total_steps": self.total_steps,
                "skipped_steps": self.skipped_steps, "consecutive_bad": self.consecutive_bad, "best": self.best,
                "window": self.window.tolist(), "elapsed_seconds": self.elapsed, "metrics": self.last_metrics,
                "metrics_step": self.last_metrics_step}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        self.step, self.micro, self.total_steps = state["step"], state["micro"], state["total_steps"]
        self.skipped_steps, self.consecutive_bad = state["skipped_steps"], state["consecutive_bad"]
        self.best, self.elapsed = state["best"], state["elapsed_seconds"]
        self.window = torch.tensor(state["window"], dtype=torch.float64, device=device)
        self.last_metrics, self.last_metrics_step = state.get("metrics", {}), state.get("metrics_step")


def new_window(device: torch.device) -> torch.Tensor:
    return torch.zeros(2, dtype=torch.float64, device=device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Python's, NumPy's, torch's (and CUDA's) generator states, as JSON-able data."""
    def b64(t: torch.Tensor) -> str:
        return base64.b64encode(t.cpu().numpy().tobytes()).decode()

    np_state = np.random.get_state()
    state = {
        "python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": b64(torch.get_rng_state()),
    }
    if torch.cuda.is_available():
        state["cuda"] = b64(torch.cuda.get_rng_state())
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    def tensor(s: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensor(state["cuda"]))
