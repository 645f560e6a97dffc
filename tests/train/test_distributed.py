"""DDP on CPU: two processes over gloo on loopback against one process with the same global batch."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from nanofm.engine.tracking import read_metrics
from tests.train.common import make_trainer, tiny_config, weights, without_key_bias

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cfg():
    # 2 processes x 2 micro-batches, collated ahead in each process's thread (as on GPUs; same batches)
    return tiny_config(steps=6, batch_size=16, micro_batch_size=4, eval_every=3, prefetch=2)


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    tmp = Path(tmp)
    cfg = _cfg()
    # phase 1: rank 1 is pointed at a folder of its own, which must never appear (only rank 0 writes)
    run = tmp / "run" if rank == 0 else tmp / "rank1-must-not-write"
    first = make_trainer(cfg, run, eval_data=make_trainer(cfg).train_data)
    assert first.dist.world_size == 2 and first.sampler.accum == 2
    first.fit(stop_after_micro_batches=3)  # under DDP a stop waits for the end of the step
    assert first.step == 2
    # phase 2: resume at the same world size, from the checkpoint rank 0 wrote
    second = make_trainer(cfg, tmp / "run", resume="auto", eval_data=make_trainer(cfg).train_data)
    assert second.step == 2
    second.fit()
    if rank == 0:
        save_file(weights(second), str(tmp / "ddp.safetensors"))
    torch.distributed.destroy_process_group()


def test_ddp_world_2_matches_one_process(tmp_path):
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    assert not (tmp_path / "rank1-must-not-write").exists()
    single = make_trainer(_cfg(), eval_data=make_trainer(_cfg()).train_data)
    single.fit()
    ddp = load_file(str(tmp_path / "ddp.safetensors"))
    ddp, ref = without_key_bias(ddp), without_key_bias(weights(single))
    assert max((ddp[k] - v).abs().max().item() for k, v in ref.items()) <= 1e-5
    records = read_metrics(tmp_path / "run/metrics.jsonl")
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]  # one writer: no duplicates
    assert [r["step"] for r in records if "eval/loss" in r] == [3, 6]


def test_torchrun_cli(tmp_path):
    cfg = tmp_path / "copy.yaml"
    cfg.write_text("task: copy\ntrain:\n  steps: 4\n  batch_size: 8\n  warmup_steps: 1\n  eval_every: 2\n"
                   "data:\n  eval_size: 8\n  train_size: 64\nmodel:\n  d_model: 32\n")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", str(_free_port()),
           "-m", "nanofm", "train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es) on cpu" in proc.stdout and proc.stdout.count("done: 4 steps") == 1
    assert (tmp_path / "run/checkpoints/step-000004").is_dir()
