import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from nanofm.engine import CheckpointError, find_resumable, load_model_weights, read_state_dict
from nanofm.engine.checkpoint import verify
from tests.train.common import make_trainer, tiny_config, weights

ROOT = Path(__file__).resolve().parents[2]


def _trained_run(tmp_path, steps=4, save_every=2):
    cfg = tiny_config(steps=steps, save_every=save_every, keep_last=5)
    trainer = make_trainer(cfg, tmp_path / "run")
    trainer.fit()
    return cfg, trainer, tmp_path / "run/checkpoints"


def test_sigkill_during_checkpoint_write_leaves_the_last_one_loadable(tmp_path):
    """A real training process is killed with SIGKILL half-way through writing its second checkpoint."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from nanofm.engine import checkpoint
        from tests.train.common import make_trainer, tiny_config

        real_fsync, calls = checkpoint._fsync_file, []
        def fsync_then_die(path):
            real_fsync(path)
            calls.append(path)
            if "step-000004" in str(path) and path.name == "optimizer.safetensors":
                os.kill(os.getpid(), signal.SIGKILL)  # weights written, the rest not
        checkpoint._fsync_file = fsync_then_die
        make_trainer(tiny_config(steps=8, save_every=2), {str(tmp_path / "run")!r}).fit()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    root = tmp_path / "run/checkpoints"
    names = sorted(p.name for p in root.iterdir())
    assert "step-000002" in names and "step-000004" not in names
    assert any(n.startswith(".tmp-step-000004") for n in names)  # the partial write, under a temporary name
    assert (root / "latest").read_text().strip() == "step-000002"
    assert find_resumable(root).name == "step-000002"

    cfg = tiny_config(steps=8, save_every=2)
    resumed = make_trainer(cfg, tmp_path / "run", resume="auto")
    assert resumed.step == 2
    resumed.fit()
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())  # stale partial folder cleaned up
    straight = make_trainer(cfg, tmp_path / "straight")
    straight.fit()
    for k, v in weights(straight).items():
        assert torch.equal(v, weights(resumed)[k]), k


def test_auto_resume_skips_partial_and_corrupted_checkpoints(tmp_path):
    _, _, root = _trained_run(tmp_path)
    (root / "step-000004" / "manifest.json").unlink()  # as if the newest one were never finished
    (root / ".tmp-step-000006-123").mkdir()
    assert find_resumable(root).name == "step-000002"


@pytest.mark.parametrize("damage", ["truncate", "bitflip"])
def test_damaged_checkpoint_file_is_named(tmp_path, damage):
    cfg, trainer, root = _trained_run(tmp_path)
    target = root / "step-000004" / "model.safetensors"
    data = bytearray(target.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2] ^= 0x10
    target.write_bytes(bytes(data))
    expected = "truncated" if damage == "truncate" else "corrupted"
    with pytest.raises(CheckpointError, match=f"{target}: {expected}"):
        verify(root / "step-000004")
    with pytest.raises(CheckpointError, match=str(target)):
        make_trainer(cfg, tmp_path / "run", resume=str(root / "step-000004"))
    if damage == "truncate":  # without the manifest, safetensors itself refuses the file
        with pytest.raises(CheckpointError, match=f"{target}: not a valid safetensors file"):
            load_model_weights(trainer.model, target)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_planted_as_weights_is_refused_and_runs_no_code(tmp_path):
    cfg, trainer, root = _trained_run(tmp_path)
    marker = tmp_path / "pwned"
    for name in ("model.bin", "model.pt", "model.safetensors"):
        path = tmp_path / name
        torch.save({"tgt_embed.weight": _Evil(marker)}, path)
        with pytest.raises(CheckpointError, match=str(path)):
            read_state_dict(path)
        with pytest.raises(CheckpointError, match=str(path)):
            load_model_weights(trainer.model, path)
    assert not marker.exists()
    plain = tmp_path / "plain.pt"  # a plain tensor file still loads, safely
    torch.save(trainer.model.state_dict(), plain)
    assert set(read_state_dict(plain)) == set(trainer.model.state_dict())


def test_checkpoint_contents(tmp_path):
    cfg, trainer, root = _trained_run(tmp_path)
    ckpt = root / "step-000004"
    assert {p.name for p in ckpt.iterdir()} == {
        "model.safetensors", "optimizer.safetensors", "optimizer.json", "trainer_state.json", "config.yaml", "manifest.json"
    }
    state = json.loads((ckpt / "trainer_state.json").read_text())
    assert state["step"] == 4 and state["epoch"] == 1 and state["step_in_epoch"] == 0 and state["micro"] == 0
    assert set(state["rng"][0]) >= {"python", "numpy", "torch"}
    assert (ckpt / "config.yaml").read_text() == (tmp_path / "run/config.yaml").read_text()
    fresh = make_trainer(cfg)
    load_model_weights(fresh.model, ckpt / "model.safetensors")  # tied embeddings stored once, restored to all
    for k, v in weights(trainer).items():
        assert torch.equal(v, weights(fresh)[k]), k
    wrong = make_trainer(tiny_config()).model
    wrong.lm_head = torch.nn.Linear(32, 7, bias=False)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_model_weights(wrong, ckpt / "model.safetensors")


def test_sigterm_checkpoints_and_stops_cleanly(tmp_path):
    cfg = tmp_path / "copy.yaml"
    cfg.write_text("task: copy\ntrain:\n  steps: 100000\n  batch_size: 8\n  log_every: 1\nmodel:\n  d_model: 32\n")
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nanofm", "train", str(cfg), "--out", str(run), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and len(metrics.read_text().splitlines()) >= 5):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err  # saved, then exits as a process killed by SIGTERM would (128 + 15)
    assert "stopped by SIGTERM" in out
    latest = (run / "checkpoints/latest").read_text().strip()
    verify(run / "checkpoints" / latest)
    last_logged = json.loads(metrics.read_text().splitlines()[-1])["step"]
    assert latest == f"step-{last_logged:06d}"
