"""Crash-safe checkpoints: a folder per checkpoint, tensors in safetensors, everything else JSON or YAML.

    checkpoints/step-000100/  model.safetensors  optimizer.safetensors  optimizer.json
                              trainer_state.json  config.yaml  [accum.safetensors]  manifest.json
    checkpoints/latest        text file naming the newest complete checkpoint folder
    checkpoints/best          text file naming the best checkpoint folder

A checkpoint is written into a temporary folder, each file flushed to disk, a manifest (sizes and
SHA-256 of every file) written last, then the folder is renamed into place: a folder named step-N is
complete by construction, and the manifest catches truncation and bit flips later. Pointers move
only after the rename. Checkpoints are ordered by the (step, micro-batch) their names carry, never by
the names themselves (list_checkpoints). Identical weights give byte-identical files. A full disk
leaves the checkpoints already written as they were. Resuming passes over broken checkpoints, saying
so, and refuses to start over silently when none is usable (find_resumable). Nothing is ever
unpickled: `.pt`/`.bin` files go through torch.load(weights_only=True), with no fallback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from nanofm.engine.tracking import to_stderr
from nanofm.errors import UserError
from nanofm.hashing import sha256_file

MANIFEST = "manifest.json"
PREFIX = "step-"
TMP_PREFIX = ".tmp-"
NAME_RE = re.compile(re.escape(PREFIX) + r"(\d+)(?:\.micro-(\d+))?")
# the files save_checkpoint always writes (accum.safetensors only inside an accumulation window)
REQUIRED = ("model.safetensors", "optimizer.safetensors", "optimizer.json", "trainer_state.json", "config.yaml")
SHARDED = ".metadata"  # torch.distributed.checkpoint's index: a sharded (FSDP) checkpoint, engine/fsdp.py
REQUIRED_SHARDED = ("model.safetensors", SHARDED, "trainer_state.json", "config.yaml")


class CheckpointError(UserError, RuntimeError):
    """A checkpoint or weights file that is missing, incomplete, corrupted or unsafe; names the file."""


# ---------------------------------------------------------------- writing


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_text(path: Path, text: str) -> None:
    path.write_text(text)
    _fsync_file(path)


def checkpoint_name(step: int, micro: int = 0) -> str:
    """step-000100, or step-000100.micro-2 for a checkpoint inside a gradient-accumulation window."""
    return f"{PREFIX}{step:06d}" + (f".micro-{micro}" if micro else "")


def checkpoint_step(name: str) -> tuple[int, int] | None:
    """(step, micro-batch) of a checkpoint folder name (step-000100, step-000100.micro-2); None for other names."""
    m = NAME_RE.fullmatch(name)
    return (int(m[1]), int(m[2] or 0)) if m else None


def list_checkpoints(root: Path) -> list[Path]:
    """The checkpoint folders in `root`, oldest first by (step, micro-batch), not by name: step-1000000
    comes after step-999999. Temporary folders and other names are left out."""
    if not root.is_dir():
        return []
    found = [(checkpoint_step(p.name), p) for p in root.iterdir() if p.is_dir()]
    return [p for key, p in sorted((key, p) for key, p in found if key is not None)]


def save_checkpoint(
    root: Path,
    name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    config_yaml: str,
    accum_grads: dict[str, Tensor] | None = None,
) -> Path:
    """Write checkpoint `root/name` atomically and return its path. A failed write (a full disk) removes
    the partial folder and raises CheckpointError; the checkpoints already there are untouched."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{TMP_PREFIX}{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)

    def write() -> None:
        tmp.mkdir()
        _write_files(tmp, model, optimizer, state, config_yaml, accum_grads)

    return _write_and_commit(root, name, tmp, write)


def finish_sharded_checkpoint(root: Path, name: str, tmp: Path, model: nn.Module, whole: dict[str, Tensor],
                              state: dict[str, Any], config_yaml: str) -> Path:
    """Complete a sharded checkpoint whose shards every process wrote into `tmp` (torch.distributed.checkpoint):
    the whole model (`whole`, the gathered state dict of `model`), the run state, the config and the manifest
    (listing the shards too), then put it in place."""

    def write() -> None:
        _write_tensors(tmp / "model.safetensors", _model_tensors(model, whole))
        _write_run_files(tmp, state, config_yaml)

    return _write_and_commit(root, name, tmp, write)


def _write_and_commit(root: Path, name: str, tmp: Path, write: Callable[[], None]) -> Path:
    """write() the files into `tmp`, then rename it to root/name, replacing an older one of the same name only
    once it is in place. A failed write (a full disk) removes `tmp` and raises CheckpointError."""
    try:
        write()
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(root, f"checkpoint {name}", e) from None
    final = root / name
    old = None
    if final.exists():  # the same step saved again: keep the old one until the new one is in place
        old = root / f"{TMP_PREFIX}old-{name}-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(root)
    if old is not None:
        shutil.rmtree(old)
    return final


def _write_files(tmp: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                 config_yaml: str, accum_grads: dict[str, Tensor] | None) -> None:
    """Every file of a checkpoint, each flushed to disk, the manifest last."""
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    _write_tensors(tmp / "model.safetensors", _model_tensors(model))
    _write_tensors(tmp / "optimizer.safetensors", tensors)
    _write_text(tmp / "optimizer.json", json.dumps(meta))
    if accum_grads:
        _write_tensors(tmp / "accum.safetensors", accum_grads)
    _write_run_files(tmp, state, config_yaml)


def _write_run_files(tmp: Path, state: dict[str, Any], config_yaml: str) -> None:
    """The run state and the config, then the manifest of every file in `tmp` (written last)."""
    _write_text(tmp / "trainer_state.json", json.dumps(state, indent=1))
    _write_text(tmp / "config.yaml", config_yaml)
    files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(tmp.iterdir())}
    _write_text(tmp / MANIFEST, json.dumps({"files": files}, indent=1))
    _fsync_dir(tmp)


def _write_tensors(path: Path, tensors: dict[str, Tensor]) -> None:
    """Byte-identical files for identical tensors: names sorted, no metadata (safetensors writes a
    metadata dict in a per-process random order)."""
    save_file({k: tensors[k].detach().contiguous() for k in sorted(tensors)}, str(path))
    _fsync_file(path)


def _model_tensors(model: nn.Module, sd: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The state dict (or `sd`, the whole one of a sharded model) with each shared tensor (tied weights) once,
    under the first of its names in sorted order; load_model_weights fills in the others."""
    sd = dict(model.state_dict() if sd is None else sd)
    for names in tied_groups(model):
        for alias in sorted(names)[1:]:
            del sd[alias]
    return sd


def _write_error(root: Path, what: str, e: OSError | SafetensorError) -> CheckpointError:
    """One line for a failed write: a full disk said as such, and the checkpoint still to be relied on."""
    text = str(e)
    full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in text or "os error 28" in text
    reason = getattr(e, "strerror", None) or (os.strerror(errno.ENOSPC) if full else text)
    cause = f"disk full while writing {what}" if full else f"could not write {what}"
    return CheckpointError(f"{root}: {cause} ({reason}); the latest good checkpoint is still {read_pointer(root, 'latest') or 'none'}")


def set_pointer(root: Path, pointer: str, target: str) -> None:
    """Atomically make `root/pointer` name checkpoint folder `target`."""
    tmp = root / f"{TMP_PREFIX}{pointer}-{os.getpid()}"
    try:
        _write_text(tmp, target + "\n")
        os.replace(tmp, root / pointer)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _write_error(root, f"pointer {pointer} (to {target})", e) from None
    _fsync_dir(root)


def read_pointer(root: Path, pointer: str) -> str | None:
    try:
        return (root / pointer).read_text().strip() or None
    except OSError:
        return None


def prune(root: Path, keep_last: int, protect: set[str]) -> None:
    """Delete all but the newest `keep_last` complete checkpoints (never one in `protect`), and stale temp folders."""
    done = list_checkpoints(root)
    for old in done[:-keep_last] if keep_last else done:
        if old.name not in protect:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in root.glob(f"{TMP_PREFIX}*"):
        if tmp.is_dir() and not tmp.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(tmp, ignore_errors=True)


def _flatten_optimizer(sd: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimizer state_dict -> (tensors for safetensors, JSON for the rest)."""
    tensors, plain_state = {}, {}
    for idx, entry in sd["state"].items():
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"{idx}.{key}"] = value.detach().contiguous().cpu()
            else:
                plain_state.setdefault(str(idx), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain_state}


# ---------------------------------------------------------------- reading


def verify(ckpt: Path) -> None:
    """Raise CheckpointError naming the first missing, truncated or corrupted file of checkpoint `ckpt`."""
    for name, info in _read_manifest(ckpt).items():
        path = ckpt / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        size = path.stat().st_size
        if size != info["size"]:
            raise CheckpointError(f"{path}: truncated or altered ({size} bytes, expected {info['size']})")
        if sha256_file(path) != info["sha256"]:
            raise CheckpointError(f"{path}: corrupted (SHA-256 does not match the manifest)")


def _read_manifest(ckpt: Path) -> dict[str, dict[str, Any]]:
    """The manifest's {file name: {"size": int, "sha256": str}}, checked: a malformed manifest, or one
    naming a file outside the folder, makes the checkpoint corrupt (CheckpointError naming the manifest)."""
    path = ckpt / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: missing or unreadable manifest ({e}); the checkpoint is incomplete") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        raise CheckpointError(f'{path}: malformed manifest (no "files" mapping); the checkpoint is corrupt')
    for name, info in files.items():
        if "/" in name or "\\" in name or ".." in name or name in ("", "."):
            raise CheckpointError(f"{path}: refused file name {name!r} (not a file of the checkpoint folder)")
        if not (isinstance(info, dict) and type(info.get("size")) is int and isinstance(info.get("sha256"), str)):
            raise CheckpointError(f'{path}: malformed manifest (entry {name!r} is not {{"size": int, "sha256": str}})')
    unlisted = [f for f in (REQUIRED_SHARDED if SHARDED in files else REQUIRED) if f not in files]
    if unlisted:
        raise CheckpointError(f"{path}: malformed manifest (does not list {', '.join(unlisted)})")
    return files


def is_sharded(ckpt: Path) -> bool:
    return (ckpt / SHARDED).is_file()


def is_complete(ckpt: Path) -> bool:
    try:
        verify(ckpt)
        return True
    except CheckpointError:
        return False


def check_usable(ckpt: Path) -> None:
    """What resuming from `ckpt` needs: it verifies and its trainer state is sound; else CheckpointError."""
    verify(ckpt)
    read_trainer_state(ckpt)


def _first_usable(candidates: Iterable[Path], check: Callable[[Path], Any]) -> tuple[Path | None, list[str]]:
    """The first of `candidates` that passes `check`, and "name (why not)" for each one passed over before it."""
    skipped = []
    for ckpt in candidates:
        try:
            check(ckpt)
            return ckpt, skipped
        except CheckpointError as e:
            skipped.append(f"{ckpt.name} ({e})")
    return None, skipped


def find_resumable(root: Path, warn: Callable[[str], None] = to_stderr) -> Path | None:
    """The checkpoint `latest` names if it is usable, else the newest usable one; None if there is no
    checkpoint at all. Passing over broken ones is said in one line to `warn`; when every checkpoint is
    broken, CheckpointError lists them. Temporary folders (an interrupted write) are never considered."""
    ckpts = list_checkpoints(root)
    if not ckpts:
        return None
    named = read_pointer(root, "latest")
    order = sorted(ckpts, key=lambda p: (p.name == named, checkpoint_step(p.name)), reverse=True)
    ckpt, skipped = _first_usable(order, check_usable)
    if ckpt is None:
        raise CheckpointError(f"{root}: no usable checkpoint to resume from: {'; '.join(skipped)}. "
                              "Fix or remove them, or start over with --overwrite")
    if skipped:
        warn(f"{root}: skipping {'; '.join(skipped)}; resuming from {ckpt.name}")
    return ckpt


def read_trainer_state(ckpt: Path) -> dict[str, Any]:
    """trainer_state.json of checkpoint `ckpt`, with the keys resuming needs checked; CheckpointError
    naming the file and every missing or invalid key otherwise."""
    path = ckpt / "trainer_state.json"
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path}: missing or unreadable trainer state ({e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: malformed trainer state (not a JSON object)")
    problems = [f"missing {k}" if k not in state else f"invalid {k}"
                for k, ok in _STATE_CHECKS.items() if k not in state or not ok(state[k], state)]
    if problems:
        raise CheckpointError(f"{path}: malformed trainer state ({', '.join(problems)})")
    return state


def _count(v: Any) -> bool:
    return type(v) is int and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# what resuming reads from trainer_state.json: key -> check(value, whole state)
_STATE_CHECKS: dict[str, Callable[[Any, dict[str, Any]], bool]] = {
    "step": lambda v, s: _count(v),
    "micro": lambda v, s: _count(v),
    "total_steps": lambda v, s: v is None or _count(v),
    "world_size": lambda v, s: _count(v) and v > 0,
    "batch_size": lambda v, s: _count(v) and v > 0,
    "skipped_steps": lambda v, s: _count(v),
    "consecutive_bad": lambda v, s: _count(v),
    "best": lambda v, s: isinstance(v, dict) and {"metric", "value", "checkpoint"} <= v.keys(),
    "window": lambda v, s: isinstance(v, list) and len(v) == 2 and all(map(_number, v)),
    "elapsed_seconds": lambda v, s: _number(v),
    "rng": lambda v, s: isinstance(v, list) and len(v) == s.get("world_size") and all(isinstance(r, dict) for r in v),
}


def pick_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """A run's checkpoint folder: "best" (falling back to latest), "latest", or a path; verified."""
    root = Path(run_dir) / "checkpoints"
    if which in ("best", "latest"):
        name = read_pointer(root, which) or (read_pointer(root, "latest") if which == "best" else None)
        if not name:  # no pointer: the newest checkpoint that verifies
            path, skipped = _first_usable(reversed(list_checkpoints(root)), verify)
            if path is None:
                raise CheckpointError(f"{root}: no complete checkpoint" + (f": {'; '.join(skipped)}" if skipped else ""))
            return path
        path = root / name
    else:
        path = Path(which)
    verify(path)
    return path


def _why_refused(e: Exception) -> str:
    """torch.load's refusal in our words: never its advice to retry with weights_only=False."""
    found = re.search(r"GLOBAL (\S+) (?:was not an allowed global|whose module)", str(e))
    if found:
        return (f"it holds {found.group(1)}, not only tensors, and unpickling it could run code; save the weights as "
                ".safetensors where they were made")
    return f"not a plain tensor file ({type(e).__name__})"


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Tensors from a .safetensors file, or from a .pt/.bin/.pth file with torch.load(weights_only=True).
    Never unpickles arbitrary objects: a file that needs that is refused with an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix in (".pt", ".bin", ".pth"):
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # weights_only refuses unsafe pickles; no fallback to a full unpickle
            raise CheckpointError(f"{path}: refused to load: {_why_refused(e)}") from None
        if not isinstance(sd, dict) or not all(isinstance(v, Tensor) for v in sd.values()):
            raise CheckpointError(f"{path}: expected a mapping of names to tensors")
        return sd
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None


def load_model_weights(model: nn.Module, path: str | Path) -> None:
    """Load weights into `model`, strictly: names and shapes must match (tied weights may be stored once)."""
    path = Path(path)
    sd = read_state_dict(path)
    own = model.state_dict()
    missing = []
    for names in tied_groups(model):  # fill every name of a shared tensor from whichever was stored
        present = [n for n in names if n in sd]
        if not present:
            missing.append(names[0])
        else:
            for n in names:
                sd.setdefault(n, sd[present[0]])
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(own[k].shape)}" for k in sd if k in own and sd[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: does not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shapes {wrong[:5]}"
        )
    model.load_state_dict(sd, strict=True)


def tied_groups(model: nn.Module) -> list[list[str]]:
    """State-dict names grouped by the tensor they share (tied embeddings form one group)."""
    groups: dict[int, list[str]] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        groups.setdefault(id(t), []).append(name)
    return list(groups.values())


def load_optimizer(optimizer: torch.optim.Optimizer, ckpt: Path) -> None:
    tensors = read_state_dict(ckpt / "optimizer.safetensors")
    meta = json.loads((ckpt / "optimizer.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["plain_state"].items():
        state.setdefault(int(idx), {}).update(entry)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
