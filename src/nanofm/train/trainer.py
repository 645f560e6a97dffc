"""The Trainer: one loop for every model. It calls `model(**batch)` and reads `.loss` (and, if present,
`.n_targets`, the number of real tokens the loss averages over); it knows nothing else about the model.

    trainer = Trainer(model, train_data, TrainConfig(steps=400), eval_data=..., collate=..., run_dir="runs/x")
    trainer.fit()

Gradient accumulation sums token-weighted losses over the micro-batches of a step (and over processes)
and divides by the total number of real tokens, so k micro-batches equal one batch k times larger.
Resuming restores weights, optimizer, step counters, RNG states, the data position and any partially
accumulated gradients: a resumed run is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import base64
import math
import random
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from nanofm import __version__
from nanofm.data import pad_collate
from nanofm.errors import UserError
from nanofm.progress import Bar, progress_bar, write

from . import checkpoint as ckpt_io
from . import distributed as dist
from . import run_folder
from .config import TrainConfig
from .evaluate import Collate, MetricsFn, autocast, evaluate_model, loss_weight, to_device
from .optim import build_optimizer, lr_at
from .prefetch import Position, Prefetcher, collate_rng, pin
from .sampler import StepSampler
from .tracking import MetricsLog, read_metrics


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (non-finite losses, a run folder in the way, a mismatched checkpoint)."""


class Trainer:
    def __init__(
        self,
        model: nn.Module,
        train_data: Sequence[Any],
        cfg: TrainConfig,
        *,
        eval_data: Sequence[Any] | None = None,
        collate: Collate = pad_collate,
        compute_metrics: MetricsFn | None = None,
        run_dir: str | Path | None = None,
        config_yaml: str = "",
        resume: str | None = None,
        progress: bool = True,
    ):
        self.cfg, self.train_data, self.eval_data = cfg, train_data, eval_data
        self.collate, self.compute_metrics, self.config_yaml = collate, compute_metrics, config_yaml
        self.dist = dist.setup(cfg.device)
        self.device = self.dist.device
        self.model = model.to(self.device)
        self.ddp = (
            nn.parallel.DistributedDataParallel(self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
            if self.dist.enabled
            else self.model
        )
        if cfg.compile:  # the training forward only: self.model keeps its state-dict keys (checkpoints, evaluation)
            self.ddp = torch.compile(self.ddp)
        self._compiling = cfg.compile  # report the first micro-batch's time, compilation included
        micro = cfg.micro_batch_size or cfg.batch_size // self.dist.world_size
        lengths = getattr(train_data, "lengths", None) if cfg.group_by_length else None
        if cfg.group_by_length and lengths is None:
            raise TrainingError("train.group_by_length needs a training set with a `lengths` attribute")
        self.sampler = StepSampler(len(train_data), cfg.batch_size, micro, self.dist.world_size, self.dist.rank,
                                   cfg.seed, lengths=lengths)
        self.optimizer = build_optimizer(self.model, cfg)
        # micro-batches collated ahead in a background thread: on CUDA a step is too short to wait for them;
        # on CPU collating costs under 1% of a step and the thread would take a core from the step's kernels
        self.prefetch = cfg.prefetch if cfg.prefetch is not None else (2 if self.device.type == "cuda" else 0)
        self._prefetcher: Prefetcher | None = None
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.ckpt_root = self.run_dir / "checkpoints" if self.run_dir else None
        self.progress = progress and self.dist.is_main

        # the state a checkpoint holds
        self.step = 0  # optimizer steps done (skipped non-finite steps included)
        self.micro = 0  # micro-batches of the current step already accumulated
        self.total_steps: int | None = None if cfg.budget else cfg.steps_for(len(train_data))
        self.skipped_steps = 0
        self.consecutive_bad = 0
        self.best: dict[str, Any] = {"metric": cfg.best_metric, "value": None, "checkpoint": None}
        self.window = self._new_window()  # loss * weight, weight of the micro-batches so far (on the device)
        self.elapsed = 0.0  # training seconds before this process (resumed runs)
        self.last_metrics: dict[str, float] = {}
        self.last_metrics_step: int | None = None

        self.stopped = False
        self._rate_unit = "samples_per_s"
        self._last_saved: tuple[int, int] | None = None
        self._seed_everything(cfg.seed + self.dist.rank)
        self._stop_signal: str | None = None
        self.log: MetricsLog | None = None
        self._locked = False
        self._lock_run_folder()
        try:
            self.precision = self._choose_precision(cfg.precision)
            self.resumed_from = self._resolve_resume(resume)
            if self.resumed_from is not None:
                self._load(self.resumed_from)
            if self.dist.is_main and self.run_dir is not None:
                import matplotlib.figure  # noqa: F401  (imported now, so that the end-of-run plot costs no budget)

                (self.run_dir / "config.yaml").write_text(config_yaml)
                self.log = MetricsLog(self.run_dir, resume_step=self.step if self.resumed_from else None)
        except BaseException:
            self._unlock_run_folder()
            raise

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _lock_run_folder(self) -> None:
        """The main process holds the run folder's lock while this Trainer trains (see run_folder.py)."""
        if self.dist.is_main and self.run_dir is not None and not self._locked:
            run_folder.check_writable(self.run_dir)
            run_folder.acquire(self.run_dir)
            self._locked = True

    def _unlock_run_folder(self) -> None:
        if self._locked:
            run_folder.release(self.run_dir)
            self._locked = False

    def _resolve_resume(self, resume: str | None) -> Path | None:
        root = self.ckpt_root
        if resume is None:
            if root is not None and _has_checkpoints(root):
                raise TrainingError(f"{self.run_dir} already holds checkpoints: resume with --resume auto, or train into a new --out folder")
            return None
        if resume == "auto":
            quiet = write if self.dist.is_main else (lambda message: None)  # one process says what it skips
            return ckpt_io.find_resumable(root, warn=quiet) if root is not None else None
        path = Path(resume)
        ckpt_io.check_usable(path)
        return path

    def _choose_precision(self, asked: str) -> str:
        """fp32 on CPU unless bf16 is asked for and measured faster here; bf16 autocast on CUDA."""
        if self.device.type == "cuda":
            return "fp32" if asked == "fp32" or not torch.cuda.is_bf16_supported() else "bf16"
        if asked != "bf16":
            return "fp32"
        t32, t16 = (self._time_step(p) for p in ("fp32", "bf16"))
        chosen = dist.broadcast_object("bf16" if t16 < t32 else "fp32")  # rank 0 decides for all
        if self.dist.is_main:
            write(f"precision: bf16 {t16 * 1e3:.1f} ms vs fp32 {t32 * 1e3:.1f} ms per micro-batch on this CPU: using {chosen}")
        return chosen

    def _time_step(self, precision: str, repeats: int = 3) -> float:
        """Median seconds of a forward + backward on the first micro-batch; leaves RNG and gradients as found."""
        rng = torch.get_rng_state()
        batch = to_device(self._collate_at((0, 0)), self.device)
        times = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            with autocast(self.device, precision):
                loss = self.model(**batch).loss
            loss.backward()
            times.append(time.perf_counter() - t)
        self.optimizer.zero_grad(set_to_none=True)
        torch.set_rng_state(rng)
        return float(np.median(times[1:]))

    # ------------------------------------------------------------------ the loop

    def fit(self, stop_after_micro_batches: int | None = None) -> dict[str, float]:
        """Train to the end of the schedule (or until stopped). `stop_after_micro_batches` stops and
        checkpoints after that many micro-batches of this call, as an interruption would."""
        cfg, accum = self.cfg, self.sampler.accum
        start = time.perf_counter() - self.elapsed
        budget = cfg.budget_seconds()
        pace = _Pace(self.step) if budget is not None else None
        bar = progress_bar(total=self.total_steps, initial=self.step, desc="train", unit="step", enabled=self.progress)
        handlers = self._install_signal_handlers()
        done_micro, since_log = 0, {"loss": 0.0, "weight": 0.0, "t": time.perf_counter()}
        stopped = False
        self._lock_run_folder()
        self._say_if_warmup_is_cut()
        if self.prefetch:
            self._prefetcher = Prefetcher(self._collate_at, self._next_position, (self.step, self.micro), self.prefetch)
        try:
            while self.total_steps is None or self.step < self.total_steps:
                for m in range(self.micro, accum):
                    self._accumulate((self.step, m), sync=m == accum - 1)
                    self.micro, done_micro = m + 1, done_micro + 1
                    mid_window = m < accum - 1
                    if mid_window and not self.dist.enabled and self._should_stop(done_micro, stop_after_micro_batches):
                        self._save(time.perf_counter() - start)
                        return self._finish(bar, handlers, stopped=True)
                loss, norm, weight = self._optimizer_step()
                since_log["loss"] += loss * weight if math.isfinite(loss) else 0.0
                since_log["weight"] += weight if math.isfinite(loss) else 0.0
                bar.update(1)

                if pace is not None and self.total_steps is None:  # measure the warm-up, then fix the length
                    if self.step == pace.first_step + 1:
                        pace.mark(self.step)  # the first step (slower) is not timed
                    elif pace.marked and self._agree(self.step >= pace.first_step + 1 + max(3, cfg.warmup_steps)
                                                     or time.perf_counter() - start > 0.1 * budget):
                        t_step = pace.step_time(self.step)
                        pace.t_eval = self._timed_evaluation(start) if self.eval_data is not None else 0.0
                        self._fix_total_steps(budget, start, t_step, pace.t_eval, bar)
                        pace.mark(self.step)
                elif pace is not None and pace.marked and self.step >= pace.step + pace.replan_every(self.total_steps):
                    # correct the length with the pace since the last fix: a machine that got busy (or idle) mid-run
                    self._fix_total_steps(budget, start, pace.step_time(self.step), pace.t_eval, bar)
                    pace.mark(self.step)
                if self.step % cfg.log_every == 0 or self.step == self.total_steps:
                    self._log_train(since_log, norm, bar, time.perf_counter() - start)
                    since_log = {"loss": 0.0, "weight": 0.0, "t": time.perf_counter()}
                at_end = self.step == self.total_steps
                if self.eval_data is not None and cfg.eval_every and self.step % cfg.eval_every == 0 and not at_end:
                    t_eval = self._timed_evaluation(start)
                    if pace is not None and pace.marked and self.total_steps is not None and self.step > pace.step:
                        # correct the length with the pace seen since the last fix, and this evaluation's cost
                        pace.t_eval = t_eval
                        self._fix_total_steps(budget, start, pace.step_time(self.step, t_eval), t_eval, bar)
                        pace.mark(self.step)
                if cfg.save_every and self.step % cfg.save_every == 0 and not at_end:
                    t0 = time.perf_counter()
                    self._save(time.perf_counter() - start)
                    if pace is not None:
                        pace.overhead += time.perf_counter() - t0
                if self._should_stop(done_micro, stop_after_micro_batches) and not at_end:
                    self._save(time.perf_counter() - start)
                    stopped = True
                    break
            if not stopped:
                if self.eval_data is not None:
                    self._evaluate_and_track(time.perf_counter() - start, save=False)
                self._save(time.perf_counter() - start)
        except BaseException:
            self._unlock_run_folder()
            raise
        finally:
            if self._prefetcher is not None:
                self._prefetcher.close()
                self._prefetcher = None
            bar.close()
        return self._finish(bar, handlers, stopped)

    def _collate_at(self, position: Position) -> Any:
        """The collated micro-batch at (step, micro-batch), its randomness from collate_generator()
        (the same in any thread); pinned for the copy to a GPU."""
        step, m = position
        with collate_rng(self.cfg.seed, self.dist.rank, step, m):
            batch = self.collate([self.train_data[i] for i in self.sampler.micro_batches(step)[m]])
        return pin(batch) if self.device.type == "cuda" else batch

    def _new_window(self) -> torch.Tensor:
        return torch.zeros(2, dtype=torch.float64, device=self.device)

    def _next_position(self, position: Position) -> Position:
        step, m = position
        return (step, m + 1) if m + 1 < self.sampler.accum else (step + 1, 0)

    def _accumulate(self, position: Position, sync: bool) -> None:
        t0 = time.perf_counter() if self._compiling else 0.0
        batch = self._prefetcher.get(position) if self._prefetcher is not None else self._collate_at(position)
        batch = to_device(batch, self.device)
        no_sync = self.ddp.no_sync() if self.dist.enabled and not sync else nullcontext()
        with no_sync:
            with autocast(self.device, self.precision):
                out = self.ddp(**batch)
            w = loss_weight(out, batch)
            self._rate_unit = "tokens_per_s" if getattr(out, "n_targets", None) is not None else "samples_per_s"
            (out.loss.float() * w).backward()  # summed over real tokens; divided by the step's total later
        self.window[0] += out.loss.detach().double() * w  # no read-back: the sums are read once per step
        self.window[1] += w
        if self._compiling:
            if self.dist.is_main:
                write(f"torch.compile: first micro-batch {time.perf_counter() - t0:.1f} s, compilation included")
            self._compiling = False

    def _optimizer_step(self) -> tuple[float, float, float]:
        """Normalise the accumulated gradient by the step's real tokens (all processes), clip, and step,
        unless the loss or gradient is non-finite: then the step is skipped and counted."""
        cfg = self.cfg
        loss_sum, weight = dist.all_reduce_sum(self.window).tolist()
        loss = loss_sum / weight if weight > 0 else float("nan")
        params = [p for p in self.model.parameters() if p.grad is not None]
        scale = self.dist.world_size / weight if weight > 0 else 0.0  # DDP averaged over processes
        torch._foreach_mul_([p.grad for p in params], scale)
        norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf")).item()
        if math.isfinite(loss) and math.isfinite(norm):
            for group in self.optimizer.param_groups:
                group["lr"] = lr_at(self.step, self.total_steps or 10**9, cfg)
            self.optimizer.step()
            if hasattr(self.model, "after_optimizer_step"):  # e.g. a moving average of the weights
                self.model.after_optimizer_step()
            self.consecutive_bad = 0
        else:
            self.skipped_steps += 1
            self.consecutive_bad += 1
            self._check_finite_weights()  # weights ruined by an earlier update: no step can recover them
            if self.dist.is_main:
                write(f"step {self.step + 1}: non-finite loss ({loss}) or gradient norm ({norm}); step skipped")
            if self.consecutive_bad >= cfg.max_bad_steps:
                raise TrainingError(
                    f"step {self.step + 1}: non-finite loss or gradients for {self.consecutive_bad} consecutive steps; "
                    "stopping (lower the learning rate, or check the data)"
                )
        self.optimizer.zero_grad(set_to_none=True)
        self.window = self._new_window()
        self.micro = 0
        self.step += 1
        return loss, norm, weight

    def _timed_evaluation(self, start: float) -> float:
        t0 = time.perf_counter()
        self._evaluate_and_track(t0 - start)
        return time.perf_counter() - t0

    def _fix_total_steps(self, budget: float, start: float, t_step: float, t_eval: float, bar: Bar) -> None:
        """Budget mode: from the measured step and evaluation times, set the number of steps so that the
        run, periodic evaluations and checkpoints included, ends when the budget is spent."""
        cfg = self.cfg
        n_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters()) * 3  # weights + AdamW moments
        t_save = 0.05 + n_bytes / 200e6 if self.run_dir is not None else 0.0
        remaining = budget - (time.perf_counter() - start) - t_eval - t_save - 0.3  # final eval, save, plot
        per_step = t_step + (t_eval / cfg.eval_every if cfg.eval_every else 0) + (t_save / cfg.save_every if cfg.save_every else 0)
        total = self.step + max(1, int(remaining / per_step))
        first, before = self.total_steps is None, self.total_steps or 0
        self.total_steps = int(dist.broadcast_object(total))
        if self.dist.is_main and (first or abs(self.total_steps - before) > 0.05 * before):  # news only
            verb = "->" if first else "-> corrected to"
            write(f"budget {cfg.budget}: {t_step * 1e3:.1f} ms per step {verb} {self.total_steps} steps in all")
        bar.total = self.total_steps
        bar.refresh()
        if first:
            self._say_if_warmup_is_cut()

    def _say_if_warmup_is_cut(self) -> None:
        """lr_at cuts a warm-up longer than the run to its length: say so once the length is known."""
        cfg = self.cfg
        if self.total_steps is not None and cfg.warmup_steps >= self.total_steps and self.dist.is_main and self.step == 0:
            write(f"train.warmup_steps={cfg.warmup_steps} is not shorter than the run's {self.total_steps} steps: "
                  f"the warm-up is cut to {max(self.total_steps - 1, 0)} steps (lr peaks at the last step)")

    def _agree(self, flag: bool) -> bool:
        """A decision taken from this process's clock, made the same on every process (any one says yes)."""
        if self.dist.enabled:
            flag = bool(dist.all_reduce_sum(torch.tensor([float(flag)], device=self.device)).item())
        return flag

    def _should_stop(self, done_micro: int, stop_after: int | None) -> bool:
        # every process must agree, or the collectives hang
        return self._agree(self._stop_signal is not None or (stop_after is not None and done_micro >= stop_after))

    # ------------------------------------------------------------------ evaluation, logging

    def evaluate(self) -> dict[str, float]:
        if self.eval_data is None:
            return {}
        micro = self.sampler.micro
        return evaluate_model(
            self.model, self.eval_data, self.collate, micro, self.device, self.precision, self.compute_metrics, self.dist
        )

    def _evaluate_and_track(self, elapsed: float, save: bool = True) -> None:
        metrics = self.evaluate()
        self.last_metrics, self.last_metrics_step = metrics, self.step
        if self.log is not None:
            self.log.log({"step": self.step, **metrics, "elapsed": round(elapsed, 3)})
        if self.dist.is_main:
            write(f"step {self.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        name = self.cfg.best_metric
        if name and name in metrics and math.isfinite(metrics[name]):
            value, best = metrics[name], self.best["value"]
            better = best is None or (value < best if self.cfg.best_mode == "min" else value > best)
            if better:
                self.best.update(value=value, checkpoint=ckpt_io.checkpoint_name(self.step))
                if save:
                    self._save(elapsed)

    def _log_train(self, since: dict[str, float], norm: float, bar: Bar, elapsed: float) -> None:
        seconds = max(time.perf_counter() - since["t"], 1e-9)
        loss = since["loss"] / since["weight"] if since["weight"] else float("nan")
        rate = since["weight"] / seconds
        lr = self.optimizer.param_groups[0]["lr"]
        unit = self._rate_unit
        bar.set_postfix({"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", unit.replace("_per_s", "/s"): f"{rate:,.0f}"}, refresh=False)
        if self.log is not None:
            self.log.log(
                {"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm, unit: rate,
                 "skipped_steps": self.skipped_steps, "elapsed": round(elapsed, 3)}
            )

    # ------------------------------------------------------------------ checkpoints

    def _state(self, elapsed: float) -> dict[str, Any]:
        epoch, in_epoch = self.sampler.position(self.step)
        return {
            "step": self.step,
            "micro": self.micro,
            "epoch": epoch,
            "step_in_epoch": in_epoch,
            "total_steps": self.total_steps,
            "precision": self.precision,  # the one that ran (train.precision bf16 keeps fp32 where not faster)
            "world_size": self.dist.world_size,
            "batch_size": self.cfg.batch_size,
            "micro_batch_size": self.sampler.micro,
            "skipped_steps": self.skipped_steps,
            "consecutive_bad": self.consecutive_bad,
            "best": self.best,
            "window": self.window.tolist(),
            "elapsed_seconds": elapsed,
            "lr": self.optimizer.param_groups[0]["lr"],
            "schedule": {"kind": self.cfg.schedule, "warmup_steps": self.cfg.warmup_steps, "peak_lr": self.cfg.lr},
            "rng": dist.all_gather_object(_rng_state()),  # one per process
            "metrics": self.last_metrics,  # the latest evaluation, made at step metrics_step
            "metrics_step": self.last_metrics_step,
            "nanofm_version": __version__,
        }

    def _save(self, elapsed: float) -> Path | None:
        """Checkpoint now (rank 0 writes); every process returns once it is complete."""
        if self._last_saved == (self.step, self.micro):  # e.g. a new best at a save_every step
            return None
        self._check_finite_weights()  # never write (or point `latest` at) weights that are NaN or inf
        self._last_saved = (self.step, self.micro)
        state = self._state(elapsed)  # a collective: every process takes part
        path = self._write(state) if self.dist.is_main and self.ckpt_root is not None else None
        dist.barrier()
        return path

    def _check_finite_weights(self) -> None:
        """Raise TrainingError if any weight or buffer is NaN/inf (every process holds the same weights, so
        under DDP all of them raise together); one read-back."""
        tensors = {n: t for n, t in self.model.state_dict().items() if t.is_floating_point()}
        finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()]).tolist() if tensors else []
        bad = [n for n, ok in zip(tensors, finite) if not ok]
        if bad:
            latest = ckpt_io.read_pointer(self.ckpt_root, "latest") if self.ckpt_root is not None else None
            raise TrainingError(
                f"step {self.step}: the weights are no longer finite (NaN or inf in {', '.join(bad[:3])}"
                f"{' and more' if len(bad) > 3 else ''}): an update diverged (train.lr too high?); nothing saved, "
                f"the latest good checkpoint is {self.ckpt_root / latest if latest else 'none'}")

    def _write(self, state: dict[str, Any]) -> Path:
        accum = None
        if self.micro:
            accum = {n: p.grad for n, p in self.model.named_parameters() if p.grad is not None}
        name = ckpt_io.checkpoint_name(self.step, self.micro)
        path = ckpt_io.save_checkpoint(self.ckpt_root, name, self.model, self.optimizer, state, self.config_yaml, accum)
        ckpt_io.set_pointer(self.ckpt_root, "latest", name)
        if self.best["checkpoint"] == name:
            ckpt_io.set_pointer(self.ckpt_root, "best", name)
        protect = {name, ckpt_io.read_pointer(self.ckpt_root, "best") or ""}
        ckpt_io.prune(self.ckpt_root, self.cfg.keep_last, protect)
        return path

    def _load(self, path: Path) -> None:
        state = ckpt_io.read_trainer_state(path)  # the files were verified when the checkpoint was picked
        changed = self._resume_changes(path)  # refused (before anything is loaded) unless harmless
        for key, ours in (("world_size", self.dist.world_size), ("batch_size", self.cfg.batch_size)):
            if state[key] != ours:
                raise TrainingError(f"{path}: saved with {key}={state[key]}, this run has {ours}; resume with the same")
        ckpt_io.load_model_weights(self.model, path / "model.safetensors")
        ckpt_io.load_optimizer(self.optimizer, path)
        if state["micro"]:
            grads = ckpt_io.read_state_dict(path / "accum.safetensors")
            for name, p in self.model.named_parameters():
                if name in grads:
                    p.grad = grads[name].to(self.device)
        self.step, self.micro = state["step"], state["micro"]
        self._resume_length(path, state["total_steps"])
        self.skipped_steps, self.consecutive_bad = state["skipped_steps"], state["consecutive_bad"]
        if changed:  # a streak of bad steps under the old options does not count against the new ones
            self.consecutive_bad = 0
        self.best, self.elapsed = state["best"], state["elapsed_seconds"]
        self.window = torch.tensor(state["window"], dtype=torch.float64, device=self.device)
        self.last_metrics, self.last_metrics_step = state.get("metrics", {}), state.get("metrics_step")
        self._last_saved = (self.step, self.micro)  # this very checkpoint: never rewrite it
        _set_rng_state(state["rng"][self.dist.rank])
        if self.dist.is_main:
            write(f"resumed from {path} (step {self.step}" + (f", micro-batch {self.micro})" if self.micro else ")"))

    def _resume_changes(self, path: Path) -> list[str]:
        """The config keys this resume changes (only those that leave the result as it was may change)."""
        saved = path / "config.yaml"
        if not self.config_yaml or not saved.is_file():
            return []
        changed = run_folder.config_changes(saved.read_text(), self.config_yaml)
        refused = [k for k in changed if k not in run_folder.RESUMABLE_CHANGES]
        if refused:
            raise TrainingError(
                f"{path}: this config changes {', '.join(f'{k} ({changed[k]})' for k in refused)} from the run being "
                "resumed; a resumed run may change only its length and where it runs "
                f"({', '.join(sorted(run_folder.RESUMABLE_CHANGES))}): drop those overrides, or start over with --overwrite")
        return list(changed)

    def _resume_length(self, path: Path, saved: int | None) -> None:
        """A budget run keeps the length it fixed. A step (or epoch) run takes this config's length, so a
        finished run can be continued (train.steps=6000 on a 4000-step run): the schedule is laid over the new
        length from the step reached, e.g. linear decay restarts from lr * (1 - progress at that step)."""
        if self.cfg.budget:
            self.total_steps = saved
            return
        if saved == self.total_steps:
            return
        if self.total_steps < self.step:
            raise TrainingError(f"{path}: already at step {self.step}, past this config's {self.total_steps} steps")
        if self.dist.is_main:
            write(f"{path}: the run was laid out for {saved} steps, this config asks for {self.total_steps}: "
                  f"the learning-rate schedule is laid over {self.total_steps} steps from step {self.step}")

    # ------------------------------------------------------------------ end

    def _install_signal_handlers(self) -> dict:
        """SIGTERM / SIGINT: finish the current micro-batch (step, under DDP), checkpoint, and stop."""
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum, frame):
            if self._stop_signal is not None:  # a second signal: stop now
                raise KeyboardInterrupt
            self._stop_signal = signal.Signals(signum).name

        return {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    @property
    def stop_signal(self) -> str | None:
        """SIGTERM or SIGINT if a signal stopped the run, else None."""
        return self._stop_signal

    def _finish(self, bar: Bar, handlers: dict, stopped: bool) -> dict[str, float]:
        bar.close()
        for s, h in handlers.items():
            signal.signal(s, h)
        if self._stop_signal and self.dist.is_main:
            write(f"stopped by {self._stop_signal} at step {self.step}; resume with --resume auto")
        self.stopped = stopped
        if self.log is not None:
            self.log.close()
            if not stopped:
                try:
                    from nanofm.viz import plot_loss_curve

                    plot_loss_curve(read_metrics(self.log.path), self.run_dir / "loss_curve.png", title=self.run_dir.name)
                except ImportError:  # matplotlib missing: the metrics file still has everything
                    pass
        self._unlock_run_folder()
        return self.last_metrics


class _Pace:
    """Step timing for budget runs: seconds per step since the last mark, evaluations and saves excluded."""

    REPLANS = 10  # the length is corrected about this many times over the run, so a change of pace is caught

    def __init__(self, first_step: int):
        self.first_step, self.marked = first_step, False
        self.t, self.step, self.overhead, self.t_eval = 0.0, first_step, 0.0, 0.0

    def mark(self, step: int) -> None:
        self.t, self.step, self.overhead, self.marked = time.perf_counter(), step, 0.0, True

    def replan_every(self, total_steps: int | None) -> int:
        """Steps between corrections: a step count (not a time), so that every process replans together."""
        return max(5, (total_steps or 0) // self.REPLANS)

    def step_time(self, step: int, exclude: float = 0.0) -> float:
        return (time.perf_counter() - self.t - self.overhead - exclude) / max(1, step - self.step)


def _has_checkpoints(root: Path) -> bool:
    return bool(ckpt_io.list_checkpoints(root))


def _rng_state() -> dict[str, Any]:
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


def _set_rng_state(state: dict[str, Any]) -> None:
    def tensor(s: str) -> torch.Tensor:
        return torch.frombuffer(bytearray(base64.b64decode(s)), dtype=torch.uint8)

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(tensor(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensor(state["cuda"]))
