"""Run folders: the lock, --overwrite's rule, folders that are not runs, NaN weights, resume with a changed
config, the exit status of a stopped run. The CLI ones run `nanofm` in subprocesses, as a user would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from nanofm.engine import TrainingError
from nanofm.engine import checkpoint as ckpt_io
from nanofm.engine.run_folder import acquire, config_changes, release
from tests.train.common import make_trainer, tiny_config

ROOT = Path(__file__).resolve().parents[2]
TINY = [f"{ROOT}/configs/copy-tiny.yaml", "model.d_model=16", "model.d_ff=32", "model.n_heads=2", "data.train_size=256",
        "data.eval_size=16", "train.batch_size=16", "train.warmup_steps=1", "--no-progress"]


def nanofm(*args: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanofm", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=240, **kw)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "nanofm", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.1)


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- --overwrite and folders that are not runs

def test_overwrite_of_a_folder_that_is_not_a_run_removes_nothing(tmp_path):
    """Issue 20.1: `--overwrite --out r/precious` used to wipe thesis.txt."""
    precious = tmp_path / "precious"
    (precious / "sub").mkdir(parents=True)
    (precious / "thesis.txt").write_text("x")
    before = files(precious)
    r = nanofm("train", *TINY, "train.steps=2", "--out", str(precious), "--overwrite")
    assert r.returncode != 0
    assert "thesis.txt" in r.stderr and "not a nanofm run folder" in r.stderr and "nothing was removed" in r.stderr
    assert "Traceback" not in r.stderr
    assert files(precious) == before and (precious / "sub").is_dir()  # not even a lock file left behind


def test_training_into_a_folder_that_is_not_a_run_is_refused(tmp_path):
    """Issue 20.5: a folder with other files used to get its config.yaml and metrics.jsonl overwritten."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my own config\n")
    (mine / "metrics.jsonl").mkdir()  # not the file the Trainer writes: still not a run folder
    r = nanofm("train", *TINY, "train.steps=2", "--out", str(mine))
    assert r.returncode != 0 and "not a nanofm run folder" in r.stderr and "config.yaml" in r.stderr
    assert (mine / "config.yaml").read_text() == "my own config\n"


def test_overwrite_clears_a_run_folder_and_never_the_current_folder(tmp_path):
    run = tmp_path / "run"
    assert nanofm("train", *TINY, "train.steps=2", "--out", str(run)).returncode == 0
    (run / "checkpoints" / "step-000099").mkdir()  # something only the old run had
    r = nanofm("train", *TINY, "train.steps=2", "--out", str(run), "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not (run / "checkpoints" / "step-000099").exists()  # the old run is gone: --overwrite did start over
    assert ckpt_io.read_pointer(run / "checkpoints", "latest") == "step-000002"
    r = nanofm("train", *TINY, "train.steps=2", "--out", ".", "--overwrite", cwd=run)
    assert r.returncode != 0 and "current folder" in r.stderr
    assert (run / "checkpoints" / "step-000002").is_dir()  # a run folder, but the one we stand in: kept
    r = nanofm("train", *TINY, "train.steps=2", "--out", "..", "--overwrite", cwd=run / "checkpoints")
    assert r.returncode != 0 and (run / "config.yaml").is_file()  # a parent of the current folder: kept


# ---------------------------------------------------------------- the lock

def test_a_second_process_is_refused_and_a_killed_holder_leaves_no_stale_lock(tmp_path):
    """Issue 20.2: two trainings of one folder used to crash each other (SafetensorError, empty metrics)."""
    run = tmp_path / "same"
    first = start("train", *TINY, "train.steps=100000", "train.save_every=2", "--out", str(run))
    try:
        wait_for(run / "checkpoints" / "latest", first)
        for extra in ([], ["--resume", "auto"]):
            r = nanofm("train", *TINY, "train.steps=150", "--out", str(run), *extra)
            assert r.returncode != 0, r.stdout
            assert f"in use by another nanofm process (PID {first.pid})" in r.stderr and str(run) in r.stderr
        info = nanofm("info", str(run))  # reading needs no lock
        assert info.returncode == 0 and "step-" in info.stdout
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    step = int(ckpt_io.read_pointer(run / "checkpoints", "latest").removeprefix("step-"))
    r = nanofm("train", *TINY, f"train.steps={step + 2}", "--out", str(run), "--resume", "auto")
    assert r.returncode == 0, r.stderr  # the kernel dropped the dead process's lock
    assert "resumed from" in r.stdout + r.stderr


def held_elsewhere(run: Path) -> bool:
    """Whether another process is refused run's lock (and names this process as the holder)."""
    module = ROOT / "src/nanofm/engine/run_folder.py"  # loaded alone: no torch import, a fast probe
    probe = (f"import importlib.util as u, pathlib; s = u.spec_from_file_location('rf', {str(module)!r}); "
             f"m = u.module_from_spec(s); s.loader.exec_module(m); m.acquire(pathlib.Path({str(run)!r}))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0 or f"PID {os.getpid()}" in r.stderr, r.stderr
    return r.returncode != 0


def test_the_lock_nests_within_a_process_and_is_released(tmp_path):
    run = tmp_path / "run"
    acquire(run)
    acquire(run)  # the CLI holds it, then the Trainer takes it again
    release(run)
    assert held_elsewhere(run)  # one release of two: still held
    release(run)
    assert not held_elsewhere(run)


def test_trainer_holds_the_lock_until_training_ends(tmp_path):
    trainer = make_trainer(tiny_config(steps=2), tmp_path / "run")
    assert held_elsewhere(tmp_path / "run")
    trainer.fit()
    assert not held_elsewhere(tmp_path / "run")


def test_a_trainer_that_fails_to_start_releases_the_lock(tmp_path):
    make_trainer(tiny_config(steps=2), tmp_path / "run").fit()
    with pytest.raises(TrainingError, match="already holds checkpoints"):
        make_trainer(tiny_config(steps=2), tmp_path / "run")  # no --resume
    assert not held_elsewhere(tmp_path / "run")


# ---------------------------------------------------------------- non-finite weights

def test_nan_weights_never_become_latest_and_the_last_good_checkpoint_survives(tmp_path):
    """Issue 20.3: lr=inf turns every weight NaN while the step's loss and gradient were finite; the bad
    steps that followed kept saving, and keep_last pruned the last good checkpoint."""
    cfg = tiny_config(steps=40, save_every=1, keep_last=1, max_bad_steps=5)
    trainer = make_trainer(cfg, tmp_path / "run")
    trainer.fit(stop_after_micro_batches=3)  # three good steps, checkpointed
    good = ckpt_io.read_pointer(tmp_path / "run/checkpoints", "latest")
    assert good == "step-000003"
    trainer = make_trainer(cfg, tmp_path / "run", resume="auto")
    trainer.cfg.lr = float("inf")  # past config validation, as a diverging update would be
    with pytest.raises(TrainingError, match="no longer finite.*step-000003"):
        trainer.fit()
    root = tmp_path / "run/checkpoints"
    assert ckpt_io.read_pointer(root, "latest") == good
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("step-")) == [good]
    sd = ckpt_io.read_state_dict(root / good / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in sd.values())
    assert trainer.step == 4  # stopped at the first save after the bad update, not after max_bad_steps


# ---------------------------------------------------------------- resume with another config

def test_config_changes_names_each_changed_key():
    old = "train:\n  lr: 0.001\n  steps: 10\n  seed: 0\ndata:\n  train_size: 64\n"
    new = "train:\n  lr: 0.001\n  steps: 20\n  seed: 1\ndata:\n  train_size: 64\n  extra: 1\n"
    assert config_changes(old, new) == {"train.seed": "0 -> 1", "train.steps": "10 -> 20"}


def test_resume_refuses_a_changed_seed_and_allows_a_longer_run(tmp_path):
    """Issue 20: changing train.seed or data.train_size and resuming used to continue silently."""
    run = tmp_path / "run"
    assert nanofm("train", *TINY, "train.steps=2", "--out", str(run)).returncode == 0
    saved = (run / "config.yaml").read_text()
    r = nanofm("train", *TINY, "train.steps=4", "train.seed=7", "data.train_size=128", "--out", str(run), "--resume", "auto")
    assert r.returncode != 0 and "train.seed (0 -> 7)" in r.stderr and "data.train_size (256 -> 128)" in r.stderr
    assert (run / "config.yaml").read_text() == saved  # the run's config is not rewritten
    r = nanofm("train", *TINY, "train.steps=4", "train.log_every=1", "--out", str(run), "--resume", "auto")
    assert r.returncode == 0, r.stderr
    assert ckpt_io.read_pointer(run / "checkpoints", "latest") == "step-000004"


def test_bad_step_streak_does_not_carry_into_a_resumed_run_with_new_options(tmp_path):
    cfg = tiny_config(steps=6, save_every=1, max_bad_steps=3)
    trainer = make_trainer(cfg, tmp_path / "run")
    trainer.fit(stop_after_micro_batches=2)
    trainer.state.consecutive_bad, trainer._last_saved = 2, None  # as if the last two steps had been skipped
    trainer._save(0.0)
    assert make_trainer(cfg, tmp_path / "run", resume="auto").consecutive_bad == 2  # same config: kept
    cfg.train.max_bad_steps = 10
    assert make_trainer(cfg, tmp_path / "run", resume="auto").consecutive_bad == 0  # new options: a new streak


# ---------------------------------------------------------------- exit status of a stopped run

def test_sigterm_saves_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = start("train", *TINY, "train.steps=100000", "train.save_every=2", "--out", str(run))
    wait_for(run / "checkpoints" / "latest", proc)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out  # a scheduler sees the stop
    assert "stopped by SIGTERM" in out
    step = ckpt_io.read_pointer(run / "checkpoints", "latest")
    ckpt_io.verify(run / "checkpoints" / step)
