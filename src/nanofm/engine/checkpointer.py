"""A run's checkpoints as the Trainer uses them: where they go, which one a resume starts from, writing one (weights,
optimizer, run state, partial gradients, the `latest` and `best` pointers, pruning) and reading one back. Never
writes weights that are NaN or inf; the file format itself is nanofm.engine.checkpoint's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nanofm.engine import checkpoint as ckpt_io, distributed as dist, fsdp, run_folder
from nanofm.errors import UserError
from nanofm.progress import write


class TrainingError(UserError, RuntimeError):
    """Training cannot go on (non-finite losses, a run folder in the way, a mismatched checkpoint)."""


class Checkpointer:
    def __init__(self, run_dir: Path | None, config_yaml: str, keep_last: int):
        self.run_dir, self.config_yaml, self.keep_last = run_dir, config_yaml, keep_last
        self.root = run_dir / "checkpoints" if run_dir is not None else None

    def resume_from(self, resume: str | None, is_main: bool) -> Path | None:
        """The checkpoint to resume: None (a new run: refused if the folder holds checkpoints), "auto" (the latest
        usable one, if any) or a checkpoint folder."""
        if resume is None:
            if self.root is not None and ckpt_io.list_checkpoints(self.root):
                raise TrainingError(f"{self.run_dir} already holds checkpoints: resume with --resume auto, or train into a new --out folder")
            return None
        if resume == "auto":
            quiet = write if is_main else (lambda message: None)  # one process says what it skips
            return ckpt_io.find_resumable(self.root, warn=quiet) if self.root is not None else None
        path = Path(resume)
        ckpt_io.check_usable(path)
        return path

    def check_finite(self, model: nn.Module, step: int) -> None:
        """Raise TrainingError if any weight or buffer is NaN/inf (every process holds the same weights, so
        under DDP all of them raise together; FSDP's processes add up what each finds in its shards); one read-back."""
        tensors = {n: fsdp.local(t) for n, t in model.state_dict().items() if t.is_floating_point()}
        finite = torch.stack([torch.isfinite(t).all() for t in tensors.values()]) if tensors else torch.ones(0)
        if fsdp.is_sharded(model):
            finite = dist.all_reduce_sum((~finite).to(torch.int64)) == 0
        finite = finite.tolist()
        bad = [n for n, ok in zip(tensors, finite) if not ok]
        if bad:
            latest = ckpt_io.read_pointer(self.root, "latest") if self.root is not None else None
            raise TrainingError(
                f"step {step}: the weights are no longer finite (NaN or inf in {', '.join(bad[:3])}"
                f"{' and more' if len(bad) > 3 else ''}): an update diverged (train.lr too high?); nothing saved, "
                f"the latest good checkpoint is {self.root / latest if latest else 'none'}")

    def write(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any], best: str | None) -> Path:
        """Checkpoint step-N[-mM] (with the partial gradients mid-step), point `latest` (and `best` when it is
        `best`) at it, and prune all but the last keep_last and the best."""
        step, micro = state["step"], state["micro"]
        accum = {n: p.grad for n, p in model.named_parameters() if p.grad is not None} if micro else None
        name = ckpt_io.checkpoint_name(step, micro)
        path = ckpt_io.save_checkpoint(self.root, name, model, optimizer, state, self.config_yaml, accum)
        self._point_and_prune(name, best)
        return path

    def _point_and_prune(self, name: str, best: str | None) -> None:
        ckpt_io.set_pointer(self.root, "latest", name)
        if best == name:
            ckpt_io.set_pointer(self.root, "best", name)
        protect = {name, ckpt_io.read_pointer(self.root, "best") or ""}
        ckpt_io.prune(self.root, self.keep_last, protect)

    def write_sharded(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                      best: str | None, is_main: bool) -> Path | None:
        """write(), for a sharded model (every process calls it): each process writes its shards into the new
        checkpoint's folder, then the main process adds the whole model and the rest and puts it in place."""
        name = ckpt_io.checkpoint_name(state["step"], state["micro"])
        tmp = self.root / f"{ckpt_io.TMP_PREFIX}{name}-sharded" if self.root is not None else None
        if is_main and tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        folder = dist.broadcast_object(str(tmp) if tmp is not None else None)  # the main process's folder, for all
        tmp = Path(folder) if folder else None
        dist.barrier()
        if tmp is not None:
            fsdp.save_sharded(model, optimizer, tmp)
        whole = fsdp.full_model_state(model)  # a collective: the tensors land on the main process
        path = None
        if is_main and tmp is not None:
            path = ckpt_io.finish_sharded_checkpoint(self.root, name, tmp, model, whole, state, self.config_yaml)
            self._point_and_prune(name, best)
        dist.barrier()
        return path

    def load_into(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                  micro: int) -> None:
        """Load checkpoint `path`'s weights, optimizer state and (mid-step: micro > 0) partial gradients."""
        if ckpt_io.is_sharded(path):  # resharded to this run's processes
            fsdp.load_sharded(model, optimizer, path)
            return
        if fsdp.is_sharded(model):
            raise TrainingError(f"{path}: written without train.parallel=fsdp; resume it as it was trained (ddp)")
        ckpt_io.load_model_weights(model, path / "model.safetensors")
        ckpt_io.load_optimizer(optimizer, path)
        if micro:
            grads = ckpt_io.read_state_dict(path / "accum.safetensors")
            for name, p in model.named_parameters():
                if name in grads:
                    p.grad = grads[name].to(device)

    def changes(self, path: Path) -> list[str]:
        """The config keys a resume from `path` changes (only those that leave the result as it was may change)."""
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
