"""The Trainer: one loop for every model. It calls `model(**batch)` and reads `.loss` (and, if present,
`.n_targets`, the number of real tokens the loss averages over); it knows nothing else about the model.
The loop calls components for the rest: the run state (state.py), budget pacing (pacing.py), the precision
(precision.py), checkpoints (checkpointer.py), evaluation (evaluate.py); the caller draws the loss curve.

    trainer = Trainer(model, train_data, TrainConfig(steps=400), eval_data=..., collate=..., run_dir="runs/x")
    trainer.fit()

Gradient accumulation sums token-weighted losses over the micro-batches of a step (and over processes)
and divides by the total number of real tokens, so k micro-batches equal one batch k times larger.
Resuming restores weights, optimizer, step counters, RNG states, the data position and any partially
accumulated gradients: a resumed run is bit-identical to an uninterrupted one on CPU.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from nanofm.data import pad_collate
from nanofm.engine import checkpoint as ckpt_io, distributed as dist, fsdp, run_folder
from nanofm.engine.checkpointer import Checkpointer, TrainingError
from nanofm.engine.config import TrainConfig
from nanofm.engine.evaluate import Collate, MetricsFn, autocast, evaluate_model, loss_weight, to_device
from nanofm.engine.optim import base_lr, build_optimizer, lr_at
from nanofm.engine.pacing import Pacer, save_seconds
from nanofm.engine.precision import choose_precision
from nanofm.engine.prefetch import Position, Prefetcher, collate_rng, pin
from nanofm.engine.sampler import StepSampler
from nanofm.engine.state import RunState, new_window, rng_state, seed_everything, set_rng_state
from nanofm.engine.tracking import MetricsLog
from nanofm.progress import Bar, progress_bar, write
from nanofm.version import __version__


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
        after_fit: float = 0.0,
    ):
        self.cfg, self.train_data, self.eval_data = cfg, train_data, eval_data
        self.after_fit = after_fit  # seconds the caller spends after fit() within a budget (e.g. a plot)
        self.collate, self.compute_metrics, self.config_yaml = collate, compute_metrics, config_yaml
        self.dist = dist.setup(cfg.device)
        self.device = self.dist.device
        self.model = model.to(self.device)
        self.sharded = self.dist.enabled and cfg.parallel == "fsdp"
        if self.sharded:  # the model's own modules become sharded: it is also the training forward
            self.ddp = fsdp.shard_model(self.model, self.device)
        elif self.dist.enabled:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        else:
            self.ddp = self.model
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
        self.ckpt = Checkpointer(self.run_dir, config_yaml, cfg.keep_last)
        self.progress = progress and self.dist.is_main
        self.state = RunState(total_steps=None if cfg.budget else cfg.steps_for(len(train_data)),
                              best={"metric": cfg.best_metric, "value": None, "checkpoint": None},
                              window=new_window(self.device))  # what a checkpoint holds, with the RNG states
        self.stopped = False
        self._rate_unit = "samples_per_s"
        self._last_saved: tuple[int, int] | None = None
        seed_everything(cfg.seed + self.dist.rank)
        self._stop_signal: str | None = None
        self.log: MetricsLog | None = None
        self._locked = False
        self._lock_run_folder()
        try:
            self.precision = choose_precision(cfg.precision, self.model, lambda: self._collate_at((0, 0)), self.device,
                                              self.dist.is_main)
            self.resumed_from = self.ckpt.resume_from(resume, self.dist.is_main)
            if self.resumed_from is not None:
                self._load(self.resumed_from)
            if self.dist.is_main and self.run_dir is not None:
                (self.run_dir / "config.yaml").write_text(config_yaml)
                self.log = MetricsLog(self.run_dir, resume_step=self.state.step if self.resumed_from else None)
        except BaseException:
            self._unlock_run_folder()
            raise

    # ------------------------------------------------------------------ set-up

    step = property(lambda self: self.state.step, doc="optimizer steps done (skipped non-finite steps included)")
    micro = property(lambda self: self.state.micro, doc="micro-batches of the current step already accumulated")
    total_steps = property(lambda self: self.state.total_steps, doc="the run's length (None until a budget run measures it)")
    skipped_steps = property(lambda self: self.state.skipped_steps, doc="steps skipped for a non-finite loss or gradient")
    consecutive_bad = property(lambda self: self.state.consecutive_bad, doc="the current streak of skipped steps")

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

    # ------------------------------------------------------------------ the loop

    def fit(self, stop_after_micro_batches: int | None = None) -> dict[str, float]:
        """Train to the end of the schedule (or until stopped). `stop_after_micro_batches` stops and
        checkpoints after that many micro-batches of this call, as an interruption would."""
        cfg, accum, state = self.cfg, self.sampler.accum, self.state
        start = time.perf_counter() - state.elapsed
        pacer = self._pacer(start)
        bar = progress_bar(total=state.total_steps, initial=state.step, desc="train", unit="step", enabled=self.progress)
        handlers = self._install_signal_handlers()
        done_micro, since_log = 0, {"loss": 0.0, "weight": 0.0, "t": time.perf_counter()}
        stopped = False
        self._lock_run_folder()
        self._say_if_warmup_is_cut()
        if self.prefetch:
            self._prefetcher = Prefetcher(self._collate_at, self._next_position, (state.step, state.micro), self.prefetch)
        try:
            while state.total_steps is None or state.step < state.total_steps:
                for m in range(state.micro, accum):
                    self._accumulate((state.step, m), sync=m == accum - 1)
                    state.micro, done_micro = m + 1, done_micro + 1
                    mid_window = m < accum - 1
                    if mid_window and not self.dist.enabled and self._should_stop(done_micro, stop_after_micro_batches):
                        self._save(time.perf_counter() - start)
                        return self._finish(bar, handlers, stopped=True)
                loss, norm, weight = self._optimizer_step()
                since_log["loss"] += loss * weight if math.isfinite(loss) else 0.0
                since_log["weight"] += weight if math.isfinite(loss) else 0.0
                bar.update(1)
                if pacer is not None:
                    self._pace(pacer, start, bar)
                if state.step % cfg.log_every == 0 or state.step == state.total_steps:
                    self._log_train(since_log, norm, bar, time.perf_counter() - start)
                    since_log = {"loss": 0.0, "weight": 0.0, "t": time.perf_counter()}
                at_end = state.step == state.total_steps
                if self.eval_data is not None and cfg.eval_every and state.step % cfg.eval_every == 0 and not at_end:
                    t_eval = self._timed_evaluation(start)
                    if pacer is not None and pacer.marked and state.total_steps is not None and state.step > pacer.step:
                        # correct the length with the pace seen since the last fix, and this evaluation's cost
                        pacer.t_eval, t_step = t_eval, pacer.step_time(state.step, t_eval)
                        self._set_length(pacer.length(state.step, t_step), pacer, bar, t_step)
                if cfg.save_every and state.step % cfg.save_every == 0 and not at_end:
                    t0 = time.perf_counter()
                    self._save(time.perf_counter() - start)
                    if pacer is not None:
                        pacer.overhead += time.perf_counter() - t0
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

    # ------------------------------------------------------------------ budget pacing

    def _pacer(self, start: float) -> Pacer | None:
        """A budget run's Pacer (None for a run of fixed length)."""
        budget = self.cfg.budget_seconds()
        if budget is None:
            return None
        n_bytes = sum(p.numel() * p.element_size() for p in self.model.parameters()) * 3  # weights + AdamW moments
        t_save = save_seconds(n_bytes) if self.run_dir is not None else 0.0
        return Pacer(budget, start, self.state.step, self.cfg.warmup_steps, self.cfg.eval_every, self.cfg.save_every, t_save,
                     self.after_fit)

    def _pace(self, pacer: Pacer, start: float, bar: Bar) -> None:
        """After a step: measure the warm-up, then fix the length; later correct it with the pace since the last
        fix (a machine that got busy, or idle, mid-run)."""
        step = self.state.step
        if self.state.total_steps is None:
            if step == pacer.first_step + 1:
                pacer.mark(step)  # the first step (slower) is not timed
            elif pacer.marked and self._agree(pacer.warmed_up(step)):
                t_step = pacer.step_time(step)
                pacer.t_eval = self._timed_evaluation(start) if self.eval_data is not None else 0.0
                self._set_length(pacer.length(step, t_step), pacer, bar, t_step)
        elif pacer.replan_now(step, self.state.total_steps):
            t_step = pacer.step_time(step)
            self._set_length(pacer.length(step, t_step), pacer, bar, t_step)

    def _set_length(self, total: int, pacer: Pacer, bar: Bar, t_step: float) -> None:
        """Fix the run's length at `total` steps (rank 0's figure for all), and restart the pacer's clock."""
        first, before = self.state.total_steps is None, self.state.total_steps or 0
        self.state.total_steps = int(dist.broadcast_object(total))
        if self.dist.is_main and (first or abs(self.state.total_steps - before) > 0.05 * before):  # news only
            verb = "->" if first else "-> corrected to"
            write(f"budget {self.cfg.budget}: {t_step * 1e3:.1f} ms per step {verb} {self.state.total_steps} steps in all")
        bar.total = self.state.total_steps
        bar.refresh()
        if first:
            self._say_if_warmup_is_cut()
        pacer.mark(self.state.step)

    def _collate_at(self, position: Position) -> Any:
        """The collated micro-batch at (step, micro-batch), its randomness from collate_generator()
        (the same in any thread); pinned for the copy to a GPU."""
        step, m = position
        with collate_rng(self.cfg.seed, step, self.dist.rank * self.sampler.accum + m):
            batch = self.collate([self.train_data[i] for i in self.sampler.micro_batches(step)[m]])
        return pin(batch) if self.device.type == "cuda" else batch

    def _next_position(self, position: Position) -> Position:
        step, m = position
        return (step, m + 1) if m + 1 < self.sampler.accum else (step + 1, 0)

    def _accumulate(self, position: Position, sync: bool) -> None:
        t0 = time.perf_counter() if self._compiling else 0.0
        batch = self._prefetcher.get(position) if self._prefetcher is not None else self._collate_at(position)
        batch = to_device(batch, self.device)
        if self.sharded:  # FSDP: reduce-scatter the gradients only at the step's last micro-batch
            self.model.set_requires_gradient_sync(sync)
        no_sync = self.ddp.no_sync() if self.dist.enabled and not sync and not self.sharded else nullcontext()
        with no_sync:
            with autocast(self.device, self.precision):
                out = self.ddp(**batch)
            w = loss_weight(out, batch)
            self._rate_unit = "tokens_per_s" if getattr(out, "n_targets", None) is not None else "samples_per_s"
            (out.loss.float() * w).backward()  # summed over real tokens; divided by the step's total later
        self.state.window[0] += out.loss.detach().double() * w  # no read-back: the sums are read once per step
        self.state.window[1] += w
        if self._compiling:
            if self.dist.is_main:
                write(f"torch.compile: first micro-batch {time.perf_counter() - t0:.1f} s, compilation included")
            self._compiling = False

    def _optimizer_step(self) -> tuple[float, float, float]:
        """Normalise the accumulated gradient by the step's real tokens (all processes), clip, and step,
        unless the loss or gradient is non-finite: then the step is skipped and counted."""
        cfg = self.cfg
        loss_sum, weight = dist.all_reduce_sum(self.state.window).tolist()
        loss = loss_sum / weight if weight > 0 else float("nan")
        params = [p for p in self.model.parameters() if p.grad is not None]
        scale = self.dist.world_size / weight if weight > 0 else 0.0  # DDP averaged over processes
        torch._foreach_mul_([p.grad for p in params], scale)
        norm = fsdp.full(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))).item()
        if math.isfinite(loss) and math.isfinite(norm):
            lr = lr_at(self.state.step, self.state.total_steps or 10**9, cfg)
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            self.optimizer.step()
            if hasattr(self.model, "after_optimizer_step"):  # e.g. a moving average of the weights
                self.model.after_optimizer_step()
            self.state.consecutive_bad = 0
        else:
            self.state.skipped_steps += 1
            self.state.consecutive_bad += 1
            self.ckpt.check_finite(self.model, self.state.step)  # ruined weights: no step can recover them
            if self.dist.is_main:
                write(f"step {self.state.step + 1}: non-finite loss ({loss}) or gradient norm ({norm}); step skipped")
            if self.state.consecutive_bad >= cfg.max_bad_steps:
                raise TrainingError(
                    f"step {self.state.step + 1}: non-finite loss or gradients for {self.state.consecutive_bad} consecutive steps; "
                    "stopping (lower the learning rate, or check the data)"
                )
        self.optimizer.zero_grad(set_to_none=True)
        self.state.window = new_window(self.device)
        self.state.micro = 0
        self.state.step += 1
        return loss, norm, weight

    def _timed_evaluation(self, start: float) -> float:
        t0 = time.perf_counter()
        self._evaluate_and_track(t0 - start)
        return time.perf_counter() - t0

    def _say_if_warmup_is_cut(self) -> None:
        """lr_at cuts a warm-up longer than the run to its length: say so once the length is known."""
        cfg = self.cfg
        if self.state.total_steps is not None and cfg.warmup_steps >= self.state.total_steps and self.dist.is_main and self.state.step == 0:
            write(f"train.warmup_steps={cfg.warmup_steps} is not shorter than the run's {self.state.total_steps} steps: "
                  f"the warm-up is cut to {max(self.state.total_steps - 1, 0)} steps (lr peaks at the last step)")

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
        return evaluate_model(self.model, self.eval_data, self.collate, micro, self.device, self.precision,
                              self.compute_metrics, self.dist, sharded=self.sharded)

    def _evaluate_and_track(self, elapsed: float, save: bool = True) -> None:
        metrics = self.evaluate()
        self.state.last_metrics, self.state.last_metrics_step = metrics, self.state.step
        if self.log is not None:
            self.log.log({"step": self.state.step, **metrics, "elapsed": round(elapsed, 3)})
        if self.dist.is_main:
            write(f"step {self.state.step}: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        name = self.cfg.best_metric
        if name and name in metrics and math.isfinite(metrics[name]):
            value, best = metrics[name], self.state.best["value"]
            better = best is None or (value < best if self.cfg.best_mode == "min" else value > best)
            if better:
                self.state.best.update(value=value, checkpoint=ckpt_io.checkpoint_name(self.state.step))
                if save:
                    self._save(elapsed)

    def _log_train(self, since: dict[str, float], norm: float, bar: Bar, elapsed: float) -> None:
        seconds = max(time.perf_counter() - since["t"], 1e-9)
        loss = since["loss"] / since["weight"] if since["weight"] else float("nan")
        rate = since["weight"] / seconds
        lr = base_lr(self.optimizer)
        unit = self._rate_unit
        bar.set_postfix({"loss": f"{loss:.4f}", "lr": f"{lr:.2e}", unit.replace("_per_s", "/s"): f"{rate:,.0f}"}, refresh=False)
        if self.log is not None:
            self.log.log(
                {"step": self.state.step, "loss": loss, "lr": lr, "grad_norm": norm, unit: rate,
                 "skipped_steps": self.state.skipped_steps, "elapsed": round(elapsed, 3)}
            )

    # ------------------------------------------------------------------ checkpoints

    def _state(self, elapsed: float) -> dict[str, Any]:
        """trainer_state.json: the run state, and what a resume checks or a reader wants to know."""
        epoch, in_epoch = self.sampler.position(self.state.step)
        return {
            **self.state.state_dict(),
            "elapsed_seconds": elapsed,
            "epoch": epoch,
            "step_in_epoch": in_epoch,
            "precision": self.precision,  # the one that ran (train.precision bf16 keeps fp32 where not faster)
            "world_size": self.dist.world_size,
            "batch_size": self.cfg.batch_size,
            "micro_batch_size": self.sampler.micro,
            "lr": base_lr(self.optimizer),
            "schedule": {"kind": self.cfg.schedule, "warmup_steps": self.cfg.warmup_steps, "peak_lr": self.cfg.lr},
            "rng": dist.all_gather_object(rng_state()),  # one per process
            "nanofm_version": __version__,
        }

    def _save(self, elapsed: float) -> Path | None:
        """Checkpoint now (rank 0 writes); every process returns once it is complete."""
        if self._last_saved == (self.state.step, self.state.micro):  # e.g. a new best at a save_every step
            return None
        self.ckpt.check_finite(self.model, self.state.step)  # never write (or point `latest` at) NaN or inf weights
        self._last_saved = (self.state.step, self.state.micro)
        state = self._state(elapsed)  # a collective: every process takes part
        if self.sharded:  # every process writes its shards
            return self.ckpt.write_sharded(self.model, self.optimizer, state, self.state.best["checkpoint"], self.dist.is_main)
        write_it = self.dist.is_main and self.ckpt.root is not None
        path = self.ckpt.write(self.model, self.optimizer, state, self.state.best["checkpoint"]) if write_it else None
        dist.barrier()
        return path

    def _load(self, path: Path) -> None:
        saved = ckpt_io.read_trainer_state(path)  # the files were verified when the checkpoint was picked
        changed = self.ckpt.changes(path)  # refused (before anything is loaded) unless harmless
        sharded = ckpt_io.is_sharded(path)  # resharded to any number of processes
        for key, ours in (("world_size", self.dist.world_size), ("batch_size", self.cfg.batch_size)):
            if saved[key] != ours and not (sharded and key == "world_size"):
                raise TrainingError(f"{path}: saved with {key}={saved[key]}, this run has {ours}; resume with the same")
        self.ckpt.load_into(path, self.model, self.optimizer, self.device, saved["micro"])
        length = self.state.total_steps  # this config's (None for a budget run)
        self.state.load_state_dict(saved, self.device)
        self.state.total_steps = length
        self._resume_length(path, saved["total_steps"])
        if changed:  # a streak of bad steps under the old options does not count against the new ones
            self.state.consecutive_bad = 0
        self._last_saved = (self.state.step, self.state.micro)  # this very checkpoint: never rewrite it
        set_rng_state(saved["rng"][self.dist.rank % len(saved["rng"])])  # (a sharded run resumed on more processes)
        if self.dist.is_main:
            write(f"resumed from {path} (step {self.state.step}" + (f", micro-batch {self.state.micro})" if self.state.micro else ")"))

    def _resume_length(self, path: Path, saved: int | None) -> None:
        """A budget run keeps the length it fixed. A step (or epoch) run takes this config's length, so a
        finished run can be continued (train.steps=6000 on a 4000-step run): the schedule is laid over the new
        length from the step reached, e.g. linear decay restarts from lr * (1 - progress at that step)."""
        if self.cfg.budget:
            self.state.total_steps = saved
            return
        if saved == self.state.total_steps:
            return
        if self.state.total_steps < self.state.step:
            raise TrainingError(f"{path}: already at step {self.state.step}, past this config's {self.state.total_steps} steps")
        if self.dist.is_main:
            write(f"{path}: the run was laid out for {saved} steps, this config asks for {self.state.total_steps}: "
                  f"the learning-rate schedule is laid over {self.state.total_steps} steps from step {self.state.step}")

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
            write(f"stopped by {self._stop_signal} at step {self.state.step}; resume with --resume auto")
        self.stopped = stopped
        if self.log is not None:
            self.log.close()
        self._unlock_run_folder()
        return self.state.last_metrics
