"""Broken checkpoints and metrics files: corrupt, malformed, past step 999,999, a full disk, torn lines."""

import errno
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError

from nanofm.engine import CheckpointError, find_resumable
from nanofm.engine import checkpoint as ckpt_io
from nanofm.engine.tracking import MetricsLog, read_metrics
from tests.train.common import make_trainer, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def _state(step: int, micro: int = 0) -> dict:
    """A trainer state with every key resuming reads."""
    return {"step": step, "micro": micro, "total_steps": 10, "world_size": 1, "batch_size": 4, "skipped_steps": 0,
            "consecutive_bad": 0, "best": {"metric": None, "value": None, "checkpoint": None},
            "window": [0.0, 0.0], "elapsed_seconds": 1.5, "rng": [{"python": [], "numpy": [], "torch": ""}]}


def _save(root: Path, step: int, point: bool = True) -> Path:
    """A small real checkpoint (a Linear layer and its SGD state) at `step`, `latest` moved to it."""
    torch.manual_seed(step)
    model = torch.nn.Linear(3, 2)
    name = ckpt_io.checkpoint_name(step)
    path = ckpt_io.save_checkpoint(root, name, model, torch.optim.SGD(model.parameters(), lr=0.1), _state(step), "a: 1\n")
    if point:
        ckpt_io.set_pointer(root, "latest", name)
    return path


def _bitflip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def _rewrite(ckpt: Path, name: str, text: str) -> None:
    """Replace a file of `ckpt` and its manifest entry, so that the checkpoint still verifies."""
    (ckpt / name).write_text(text)
    manifest = json.loads((ckpt / "manifest.json").read_text())
    manifest["files"][name] = {"size": len(text.encode()), "sha256": hashlib.sha256(text.encode()).hexdigest()}
    (ckpt / "manifest.json").write_text(json.dumps(manifest))


# ------------------------------------------------------------ 1. --resume auto with broken checkpoints


def test_resume_passes_over_a_corrupt_newest_checkpoint_and_says_so_on_one_line(tmp_path, capsys):
    root = tmp_path / "checkpoints"
    assert find_resumable(root) is None  # no folder
    root.mkdir()
    (root / ".tmp-step-000002-99").mkdir()  # an interrupted write is not a checkpoint
    assert find_resumable(root) is None
    _save(root, 8), _save(root, 10)
    assert find_resumable(root) == root / "step-000010"  # what `latest` names, when it is good
    _bitflip(root / "step-000010" / "model.safetensors")
    said = []
    assert find_resumable(root, warn=said.append) == root / "step-000008"
    assert len(said) == 1 and "\n" not in said[0]  # one line, naming what was skipped, why, and what is used
    assert said[0].startswith(f"{root}: skipping step-000010 ({root / 'step-000010/model.safetensors'}: corrupted")
    assert said[0].endswith("; resuming from step-000008")
    assert find_resumable(root) == root / "step-000008"  # by default the line goes to standard error
    assert capsys.readouterr().err.strip() == said[0]


def test_resume_refuses_when_every_checkpoint_is_broken(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 8), _save(root, 10)
    (root / "step-000010" / "manifest.json").unlink()
    _bitflip(root / "step-000008" / "optimizer.safetensors")
    with pytest.raises(CheckpointError) as err:
        find_resumable(root, warn=pytest.fail)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{root}: no usable checkpoint")
    assert f"step-000010 ({root / 'step-000010/manifest.json'}: missing or unreadable manifest" in message
    assert f"step-000008 ({root / 'step-000008/optimizer.safetensors'}: corrupted" in message
    assert message.index("step-000010") < message.index("step-000008")  # newest first
    assert "remove them" in message and "--overwrite" in message  # the ways out


def test_trainer_resume_auto_does_not_start_over_when_all_checkpoints_are_broken(tmp_path):
    """Before: find_resumable returned None and the run started from step 0, wiping metrics.jsonl."""
    cfg = tiny_config(steps=4, save_every=2, keep_last=5)
    make_trainer(cfg, tmp_path / "run").fit()
    root, metrics = tmp_path / "run/checkpoints", tmp_path / "run/metrics.jsonl"
    for ckpt in ckpt_io.list_checkpoints(root):
        _bitflip(ckpt / "model.safetensors")
    logged = metrics.read_text()
    with pytest.raises(CheckpointError, match="no usable checkpoint to resume from: step-000004 .*; step-000002 "):
        make_trainer(cfg, tmp_path / "run", resume="auto")
    assert metrics.read_text() == logged


# ------------------------------------------------------------ 2. malformed manifests


@pytest.mark.parametrize("manifest", [
    {"files": [1, 2, 3]}, {"files": {"x": 3}}, [], {"files": {"model.safetensors": {"size": "a"}}},
    {"files": {"model.safetensors": {"size": 1, "sha256": 5}}}, "files", {}, {"files": {}},
])
def test_malformed_manifest_is_a_corrupt_checkpoint(tmp_path, manifest):
    root = tmp_path / "checkpoints"
    _save(root, 8), _save(root, 10)
    path = root / "step-000010" / "manifest.json"
    path.write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: (malformed|missing or unreadable) manifest"):
        ckpt_io.verify(root / "step-000010")
    assert not ckpt_io.is_complete(root / "step-000010")
    said = []
    assert find_resumable(root, warn=said.append) == root / "step-000008"  # falls back, no traceback
    assert str(path) in said[0]


@pytest.mark.parametrize("outside", ["../step-000008/model.safetensors", "ABSOLUTE", "..", "sub/x"])
def test_manifest_names_outside_the_checkpoint_are_refused(tmp_path, monkeypatch, outside):
    """A manifest entry whose size and SHA-256 match a file outside the folder must not make it verify."""
    root = tmp_path / "checkpoints"
    _save(root, 8), _save(root, 10)
    target = root / "step-000008" / "model.safetensors"
    name = str(target) if outside == "ABSOLUTE" else outside
    manifest = json.loads((root / "step-000010" / "manifest.json").read_text())
    manifest["files"][name] = {"size": target.stat().st_size, "sha256": hashlib.sha256(target.read_bytes()).hexdigest()}
    (root / "step-000010" / "manifest.json").write_text(json.dumps(manifest))
    read = []
    real_sha = ckpt_io.sha256_file
    monkeypatch.setattr(ckpt_io, "sha256_file", lambda p: read.append(p) or real_sha(p))
    with pytest.raises(CheckpointError, match=f"^{re.escape(str(root / 'step-000010/manifest.json'))}: refused file name"):
        ckpt_io.verify(root / "step-000010")
    assert all(p.parent == root / "step-000010" for p in read)


# ------------------------------------------------------------ 3. order by step, not by name


def test_checkpoint_step_parses_names():
    assert ckpt_io.checkpoint_step("step-000100") == (100, 0)
    assert ckpt_io.checkpoint_step("step-000100.micro-2") == (100, 2)
    assert ckpt_io.checkpoint_step("step-1000000") == (1000000, 0)
    for other in (".tmp-step-000004-123", "latest", "step-", "step-12a", "step-000100.micro-", "xstep-000001"):
        assert ckpt_io.checkpoint_step(other) is None, other


def test_checkpoints_are_ordered_by_step_past_999999(tmp_path):
    root = tmp_path / "checkpoints"
    names = ["step-999998", "step-999999", "step-999999.micro-2", "step-999999.micro-10", "step-1000000"]
    for name in [*names, ".tmp-step-1000001-7", "notes", "step-x"]:
        (root / name).mkdir(parents=True)
    assert [p.name for p in ckpt_io.list_checkpoints(root)] == names
    ckpt_io.prune(root, keep_last=2, protect=set())
    assert sorted(p.name for p in root.iterdir() if p.name.startswith("step-")) == ["step-1000000", "step-999999.micro-10", "step-x"]


def test_resume_picks_the_highest_step_past_999999(tmp_path):
    root = tmp_path / "checkpoints"
    _save(root, 999999, point=False), _save(root, 1000000, point=False)  # no `latest`: the newest by step wins
    assert find_resumable(root) == root / "step-1000000"
    assert ckpt_io.pick_checkpoint(tmp_path, "latest") == root / "step-1000000"


# ------------------------------------------------------------ 4. a full disk


def _failing_fsync(code: int, at: str = ""):
    def fsync(path: Path) -> None:
        if path.name.startswith(at):
            raise OSError(code, os.strerror(code))
    return fsync


def _full_safetensors(tensors, filename, metadata=None):
    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


@pytest.mark.parametrize("patch, cause", [
    (("_fsync_file", _failing_fsync(errno.ENOSPC, "optimizer.safetensors")),  # the weights written, the rest not
     "disk full while writing checkpoint step-000010 (No space left on device)"),
    (("save_file", _full_safetensors), "disk full while writing checkpoint step-000010 (No space left on device)"),
    (("_fsync_file", _failing_fsync(errno.EIO, "config.yaml")), "could not write checkpoint step-000010 (Input/output error)"),
])
def test_failed_write_removes_the_partial_folder_and_names_the_good_checkpoint(tmp_path, monkeypatch, patch, cause):
    root = tmp_path / "checkpoints"
    _save(root, 8)
    before = (root / "step-000008" / "manifest.json").read_text()
    monkeypatch.setattr(ckpt_io, *patch)
    with pytest.raises(CheckpointError) as err:
        _save(root, 10)
    assert str(err.value) == f"{root}: {cause}; the latest good checkpoint is still step-000008"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000008"]  # no temporary folder left
    assert (root / "latest").read_text().strip() == "step-000008"
    assert (root / "step-000008" / "manifest.json").read_text() == before
    ckpt_io.verify(root / "step-000008")


def test_disk_full_on_the_first_checkpoint_says_none(tmp_path, monkeypatch):
    monkeypatch.setattr(ckpt_io, "_fsync_file", _failing_fsync(errno.ENOSPC))
    with pytest.raises(CheckpointError, match=r"disk full while writing checkpoint step-000001 .*; "
                                              r"the latest good checkpoint is still none$"):
        _save(tmp_path / "checkpoints", 1)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_disk_full_when_moving_the_pointer(tmp_path, monkeypatch):
    root = tmp_path / "checkpoints"
    _save(root, 8), _save(root, 10, point=False)
    monkeypatch.setattr(ckpt_io, "_fsync_file", _failing_fsync(errno.ENOSPC, ".tmp-latest"))
    with pytest.raises(CheckpointError) as err:
        ckpt_io.set_pointer(root, "latest", "step-000010")
    assert str(err.value) == (f"{root}: disk full while writing pointer latest (to step-000010) (No space left on device); "
                              "the latest good checkpoint is still step-000008")
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000008", "step-000010"]  # no stray file


# ------------------------------------------------------------ 5. the same weights give the same bytes

_SAVE_FOUR_TIMES = textwrap.dedent("""
    import hashlib, sys, torch
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from nanofm.families.seq2seq.copy import build
    from nanofm.engine.checkpoint import save_checkpoint
    from tests.train.common import tiny_config

    torch.manual_seed(0)
    model = build(tiny_config()).model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum(p.sum() for p in model.parameters()).backward()
    opt.step()  # optimizer state with tensors
    grads = {{n: p.grad for n, p in model.named_parameters()}}
    for i in range(4):  # several saves: a randomly ordered header differs between them too
        ckpt = save_checkpoint(Path({out!r}) / str(i), "step-000001", model, opt, {{"step": 1}}, "", accum_grads=grads)
        print(" ".join(hashlib.sha256((ckpt / f).read_bytes()).hexdigest() for f in
                       ("model.safetensors", "optimizer.safetensors", "accum.safetensors", "manifest.json")))
""")


def test_identical_weights_give_identical_files(tmp_path):
    """The copy model has one table under three names (shared embeddings, tied output): before, the
    names dropped went into the file's metadata in an order that changed with PYTHONHASHSEED and per save."""
    model = make_trainer(tiny_config()).model
    assert ["lm_head.weight", "src_embed.weight", "tgt_embed.weight"] in [sorted(g) for g in ckpt_io.tied_groups(model)]
    lines = []
    for seed in ("1", "2"):
        script = _SAVE_FOUR_TIMES.format(root=str(ROOT), out=str(tmp_path / seed))
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONHASHSEED": seed}, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
        lines += proc.stdout.splitlines()[-4:]
    assert len(lines) == 8 and len(set(lines)) == 1, lines
    ckpt = tmp_path / "1" / "0" / "step-000001"
    stored = set(ckpt_io.read_state_dict(ckpt / "model.safetensors"))
    assert "lm_head.weight" in stored and not {"src_embed.weight", "tgt_embed.weight"} & stored  # stored once
    fresh = make_trainer(tiny_config()).model
    torch.nn.init.zeros_(fresh.tgt_embed.weight)
    ckpt_io.load_model_weights(fresh, ckpt / "model.safetensors")  # every name of the shared table filled
    assert torch.equal(fresh.src_embed.weight, ckpt_io.read_state_dict(ckpt / "model.safetensors")["lm_head.weight"])
    assert fresh.tgt_embed.weight.abs().sum() > 0


# ------------------------------------------------------------ 6. trainer_state.json


def test_read_trainer_state_names_the_file_and_every_bad_key(tmp_path):
    ckpt = _save(tmp_path / "checkpoints", 8)
    path = ckpt / "trainer_state.json"
    assert ckpt_io.read_trainer_state(ckpt) == _state(8)
    broken = {k: v for k, v in _state(8).items() if k not in ("rng", "window")} | {"step": "8", "world_size": 0}
    path.write_text(json.dumps(broken))
    with pytest.raises(CheckpointError) as err:
        ckpt_io.read_trainer_state(ckpt)
    assert str(err.value) == f"{path}: malformed trainer state (invalid step, invalid world_size, missing window, missing rng)"
    for text, why in (("{not json", "missing or unreadable trainer state"), ("[1]", "malformed trainer state")):
        path.write_text(text)
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(path))}: {why}"):
            ckpt_io.read_trainer_state(ckpt)


def test_resume_passes_over_a_checkpoint_whose_trainer_state_is_broken(tmp_path):
    """The manifest matches (it verifies), but resuming from it would fail: it is not usable."""
    root = tmp_path / "checkpoints"
    _save(root, 8), _save(root, 10)
    _rewrite(root / "step-000010", "trainer_state.json", "{not json")
    ckpt_io.verify(root / "step-000010")
    said = []
    assert find_resumable(root, warn=said.append) == root / "step-000008"
    assert f"{root / 'step-000010/trainer_state.json'}: missing or unreadable trainer state" in said[0]
    state = _state(8)
    del state["rng"]
    _rewrite(root / "step-000008", "trainer_state.json", json.dumps(state))
    with pytest.raises(CheckpointError, match=r"step-000008 \(.*trainer_state.json: malformed trainer state \(missing rng\)\)"):
        find_resumable(root)


# ------------------------------------------------------------ 7. a torn last line in metrics.jsonl


def _metrics(path: Path, tail: str) -> None:
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3)) + tail)


def test_torn_last_metrics_line_is_skipped_and_said(tmp_path, capsys):
    path = tmp_path / "metrics.jsonl"
    _metrics(path, '{"step": 4, "lo')
    said = []
    assert [r["step"] for r in read_metrics(path, warn=said.append)] == [1, 2, 3]
    assert len(said) == 1 and said[0].startswith(f"{path}:4: skipping a torn last line") and "\n" not in said[0]
    read_metrics(path)
    assert capsys.readouterr().err.strip() == said[0]  # by default on standard error


@pytest.mark.parametrize("bad", ['{"step": 4, "lo', "3", "\x00\x00\x00"])
def test_malformed_metrics_line_in_the_middle_is_an_error(tmp_path, bad):
    path = tmp_path / "metrics.jsonl"
    _metrics(path, bad + "\n" + json.dumps({"step": 5}) + "\n")
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}:4: not a JSON record"):
        read_metrics(path, warn=pytest.fail)


def test_resumed_metrics_log_drops_a_torn_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _metrics(path, '{"step": 4, "lo')
    log = MetricsLog(tmp_path, resume_step=2, tensorboard=False)
    log.log({"step": 3, "loss": 0.5})
    log.close()
    assert [r["step"] for r in read_metrics(path, warn=pytest.fail)] == [1, 2, 3]
    assert read_metrics(path)[-1]["loss"] == 0.5


def test_trainer_resumes_after_a_torn_metrics_line(tmp_path):
    cfg = tiny_config(steps=4, save_every=2, keep_last=5)
    make_trainer(cfg, tmp_path / "run").fit(stop_after_micro_batches=2)
    metrics = tmp_path / "run/metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 3, "loss": 2.')  # killed while logging step 3
    resumed = make_trainer(cfg, tmp_path / "run", resume="auto")
    assert resumed.step == 2
    resumed.fit()
    assert [r["step"] for r in read_metrics(metrics, warn=pytest.fail) if "loss" in r] == [1, 2, 3, 4]
