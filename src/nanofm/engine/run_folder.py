"""Run folders are locked while a process trains into them, and never clobbered by accident.

    with claim_run_folder(Path("runs/x"), overwrite=False, resume=None):   # lock, then check or clear
        ...train...

- The lock is an OS file lock (flock) on runs/x/.lock: the kernel releases it when the process dies,
  so a kill -9 leaves no stale lock; a second process is refused at once, with the holder's PID.
  Reading a run (evaluate, info, predictors) takes no lock.
- A folder is a run folder when it holds config.yaml beside metrics.jsonl or checkpoints/ (what the
  Trainer writes). Only such a folder may be cleared by --overwrite, and never `/`, the home folder, the
  current folder or one of its parents; training into a folder that holds anything else is refused.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from nanofm.errors import UserError

LOCK = ".lock"
# what a resumed run may change: its length, logging and checkpointing, and where it runs
RESUMABLE_CHANGES = frozenset({
    "train.steps", "train.epochs", "train.budget", "train.log_every", "train.save_every", "train.keep_last",
    "train.max_bad_steps", "train.prefetch", "train.device", "train.compile",
})


class RunFolderError(UserError, RuntimeError):
    """A run folder that is in use, or that is not ours to write into or remove; names the folder."""


def is_run_folder(path: Path) -> bool:
    return (path / "config.yaml").is_file() and ((path / "metrics.jsonl").is_file() or (path / "checkpoints").is_dir())


def _entries(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name != LOCK) if path.is_dir() else []


def _listing(path: Path, names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"{path} holds {shown}"


# ---------------------------------------------------------------- the lock

class _Lock:
    def __init__(self, fd: int):
        self.fd, self.count = fd, 1


_held: dict[Path, _Lock] = {}  # this process's locks by resolved folder: taking one again nests


def acquire(run_dir: Path) -> None:
    """Take run_dir's lock (creating the folder), or raise RunFolderError naming the process that holds it."""
    key = run_dir.resolve()
    if key in _held:
        _held[key].count += 1
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    if not _try_lock(fd):
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunFolderError(f"{run_dir}: in use by another nanofm process (PID {holder}); "
                             "wait for it to finish, stop it, or train into another --out folder")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held[key] = _Lock(fd)


def release(run_dir: Path) -> None:
    key = run_dir.resolve()
    lock = _held.get(key)
    if lock is None:
        return
    lock.count -= 1
    if lock.count == 0:
        del _held[key]
        os.close(lock.fd)  # closing the descriptor releases the lock


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: a byte-range lock on the file instead
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


# ---------------------------------------------------------------- what may be written or removed

def check_writable(run_dir: Path, overwrite: bool = False) -> None:
    """Refuse an existing folder that holds files but is not a run folder (to train into, or to clear with
    --overwrite), and never clear /, the home folder, the current folder or a parent of it."""
    if overwrite:
        check_removable(run_dir)
    elif _entries(run_dir) and not is_run_folder(run_dir):
        raise RunFolderError(f"{_listing(run_dir, _entries(run_dir))}, and is not a nanofm run folder (no config.yaml "
                             "beside metrics.jsonl or checkpoints/): refusing to train into it; choose a new or empty "
                             "--out folder")


def check_removable(folder: Path, ours: Callable[[Path], bool] = is_run_folder,
                    what: str = "a nanofm run folder (no config.yaml beside metrics.jsonl or checkpoints/)") -> None:
    """What --overwrite may remove: an empty folder, or one that `ours` recognises; never /, the home folder,
    the current folder or a parent of it. Else RunFolderError naming the files that would have gone."""
    here, target = Path.cwd().resolve(), folder.resolve()
    if target in (Path(target.anchor), Path.home().resolve()) or here == target or target in here.parents:
        raise RunFolderError(f"{folder}: --overwrite never removes /, the home folder, the current folder or "
                             "a parent of it; choose a folder below the current one")
    names = _entries(folder)
    if names and not ours(folder):
        raise RunFolderError(f"{_listing(folder, names)}, and is not {what}: --overwrite removes only such "
                             "folders; nothing was removed")


def clear_run_folder(run_dir: Path) -> None:
    """Delete everything in run folder `run_dir` but its lock, which the caller holds; any other folder is refused."""
    check_writable(run_dir, overwrite=True)
    for name in _entries(run_dir):
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


@contextlib.contextmanager
def claim_run_folder(run_dir: Path, overwrite: bool = False) -> Iterator[Path]:
    """Hold run_dir's lock for the block; with `overwrite`, clear it first (run folders only), else check
    that it is new, empty or a run folder. A refused folder is left as it was (no lock file is made)."""
    check_writable(run_dir, overwrite)
    acquire(run_dir)
    try:
        if overwrite:
            clear_run_folder(run_dir)
        yield run_dir
    finally:
        release(run_dir)


def config_changes(saved_yaml: str, new_yaml: str) -> dict[str, str]:
    """{dotted key: 'old -> new'} for every value that differs between two resolved configs (keys that only
    one side has, e.g. a field added by a newer nanofm, are not compared)."""
    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if not isinstance(data, dict):
            return {prefix[:-1]: data}
        return {k: v for key, value in data.items() for k, v in flat(value, f"{prefix}{key}.").items()}

    old, new = flat(yaml.safe_load(saved_yaml) or {}), flat(yaml.safe_load(new_yaml) or {})
    return {k: f"{old[k]!r} -> {new[k]!r}" for k in sorted(old.keys() & new.keys()) if old[k] != new[k]}
