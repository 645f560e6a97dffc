"""Crash-safe checkpoints: a folder per checkpoint, tensors in safetensors, everything else JSON or YAML.

    checkpoints/step-000100/  model.safetensors  optimizer.safetensors  optimizer.json
                              trainer_state.json  config.yaml  [accum.safetensors]  manifest.json
    checkpoints/latest        text file naming the newest complete checkpoint folder
    checkpoints/best          text file naming the best checkpoint folder

A checkpoint is written into a temporary folder, each file flushed to disk, a manifest (sizes and
SHA-256 of every file) written last, then the folder is renamed into place: a folder named step-N is
complete by construction, and the manifest catches truncation and bit flips later. Pointers move
only after the rename. Nothing is ever unpickled: `.pt`/`.bin` files go through
torch.load(weights_only=True), with no fallback.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file, save_model
from torch import Tensor, nn

MANIFEST = "manifest.json"
PREFIX = "step-"
TMP_PREFIX = ".tmp-"


class CheckpointError(RuntimeError):
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


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def checkpoint_name(step: int, micro: int = 0) -> str:
    """step-000100, or step-000100.micro-2 for a checkpoint inside a gradient-accumulation window."""
    return f"{PREFIX}{step:06d}" + (f".micro-{micro}" if micro else "")


def save_checkpoint(
    root: Path,
    name: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    config_yaml: str,
    accum_grads: dict[str, Tensor] | None = None,
) -> Path:
    """Write checkpoint `root/name` atomically and return its path."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / name
    tmp = root / f"{TMP_PREFIX}{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    _fsync_file(tmp / "model.safetensors")
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    _fsync_file(tmp / "optimizer.safetensors")
    _write_text(tmp / "optimizer.json", json.dumps(meta))
    if accum_grads:
        save_file({k: v.contiguous() for k, v in accum_grads.items()}, str(tmp / "accum.safetensors"))
        _fsync_file(tmp / "accum.safetensors")
    _write_text(tmp / "trainer_state.json", json.dumps(state, indent=1))
    _write_text(tmp / "config.yaml", config_yaml)
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    _write_text(tmp / MANIFEST, json.dumps({"files": files}, indent=1))
    _fsync_dir(tmp)
    old = None
    if final.exists():  # the same step saved again: keep the old one until the new one is in place
        old = root / f"{TMP_PREFIX}old-{name}-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(root)
    if old is not None:
        shutil.rmtree(old)
    return final


def set_pointer(root: Path, pointer: str, target: str) -> None:
    """Atomically make `root/pointer` name checkpoint folder `target`."""
    tmp = root / f"{TMP_PREFIX}{pointer}-{os.getpid()}"
    _write_text(tmp, target + "\n")
    os.replace(tmp, root / pointer)
    _fsync_dir(root)


def read_pointer(root: Path, pointer: str) -> str | None:
    try:
        return (root / pointer).read_text().strip() or None
    except OSError:
        return None


def prune(root: Path, keep_last: int, protect: set[str]) -> None:
    """Delete all but the newest `keep_last` complete checkpoints (never one in `protect`), and stale temp folders."""
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))
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
    manifest_path = ckpt / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())["files"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{manifest_path}: missing or unreadable manifest ({e}); the checkpoint is incomplete") from None
    for name, info in manifest.items():
        path = ckpt / name
        if not path.is_file():
            raise CheckpointError(f"{path}: missing from the checkpoint")
        size = path.stat().st_size
        if size != info["size"]:
            raise CheckpointError(f"{path}: truncated or altered ({size} bytes, expected {info['size']})")
        if _sha256(path) != info["sha256"]:
            raise CheckpointError(f"{path}: corrupted (SHA-256 does not match the manifest)")


def is_complete(ckpt: Path) -> bool:
    try:
        verify(ckpt)
        return True
    except CheckpointError:
        return False


def find_resumable(root: Path) -> Path | None:
    """The checkpoint `latest` names if it verifies, else the newest complete one; None if there is none.
    Temporary folders (an interrupted write) are never considered."""
    if not root.is_dir():
        return None
    named = read_pointer(root, "latest")
    if named and is_complete(root / named):
        return root / named
    for ckpt in sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)), reverse=True):
        if is_complete(ckpt):
            return ckpt
    return None


def pick_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """A run's checkpoint folder: "best" (falling back to latest), "latest", or a path; verified."""
    root = Path(run_dir) / "checkpoints"
    if which in ("best", "latest"):
        name = read_pointer(root, which) or (read_pointer(root, "latest") if which == "best" else None)
        path = root / name if name else find_resumable(root)
        if path is None:
            raise CheckpointError(f"{root}: no complete checkpoint")
    else:
        path = Path(which)
    verify(path)
    return path


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
            raise CheckpointError(f"{path}: refused to load (not a plain tensor file: {type(e).__name__}: {str(e).splitlines()[0]})") from None
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
