"""FSDP (train.parallel=fsdp) on CPU: two processes over gloo, sharded weights and optimizer state, against DDP;
its sharded checkpoint (torch.distributed.checkpoint) resumed by one process."""

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from nanofm.engine.checkpoint import load_model_weights, pick_checkpoint
from tests.train.common import make_trainer, tiny_config, weights, without_key_bias
from tests.train.test_distributed import _free_port

pytest.importorskip("torch.distributed.fsdp", reason="this PyTorch has no FSDP2 (fully_shard)")


def _cfg(parallel: str):
    # 2 processes x 2 micro-batches of 4: 16 examples a step, a checkpoint at step 3
    return tiny_config(steps=6, batch_size=16, micro_batch_size=4, save_every=3, parallel=parallel)


def _worker(rank: int, world: int, port: int, tmp: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from torch.distributed.tensor import DTensor

    tmp = Path(tmp)
    ddp = make_trainer(_cfg("ddp"), tmp / "ddp" if rank == 0 else None)
    ddp.fit()
    fsdp = make_trainer(_cfg("fsdp"), tmp / "fsdp" if rank == 0 else tmp / "rank1-must-not-write")
    shards = [p for p in fsdp.model.parameters() if isinstance(p, DTensor)]
    assert shards and all(p.to_local().numel() < p.numel() for p in shards if p.size(0) >= 2)  # really sharded
    fsdp.fit(stop_after_micro_batches=6)  # 3 steps, then the sharded checkpoint at step 3
    assert fsdp.step == 3
    if rank == 0:
        save_file(weights(ddp), str(tmp / "ddp.safetensors"))
    torch.distributed.destroy_process_group()


def test_fsdp_matches_ddp_and_its_sharded_checkpoint_resumes_in_one_process(tmp_path):
    """Catches: shards that do not add up to the model (a step that differs from DDP's), gradients left unsynced
    across micro-batches, a checkpoint that only one process wrote, or one that cannot be resharded to one process
    (the resumed run would not end where DDP's 6 steps did)."""
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    assert not (tmp_path / "rank1-must-not-write").exists()
    ckpt = tmp_path / "fsdp" / "checkpoints" / "step-000003"
    names = {p.name for p in ckpt.iterdir()}
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata", "model.safetensors", "manifest.json"} <= names
    assert "optimizer.safetensors" not in names  # the optimizer state is in the shards
    # the whole model in model.safetensors, as every reader of run folders expects, equals DDP's at step 3
    ddp3 = make_trainer(_cfg("ddp"))
    ddp3.fit(stop_after_micro_batches=12)  # one process, 4 micro-batches a step: 3 steps
    whole = make_trainer(_cfg("ddp")).model
    load_model_weights(whole, ckpt / "model.safetensors")
    got, want = without_key_bias(dict(whole.state_dict())), without_key_bias(weights(ddp3))
    assert max((got[k] - v).abs().max().item() for k, v in want.items()) <= 1e-5
    # resumed by one process (weights and AdamW's moments resharded from 2 shards), it ends where DDP ends
    resumed = make_trainer(_cfg("fsdp"), tmp_path / "fsdp", resume="auto")
    assert resumed.step == 3 and resumed.optimizer.state  # the moments came back, not a fresh optimizer
    resumed.fit()
    ddp = without_key_bias(load_file(str(tmp_path / "ddp.safetensors")))
    ours = without_key_bias(weights(resumed))
    assert max((ddp[k] - v).abs().max().item() for k, v in ours.items()) <= 1e-5
    assert pick_checkpoint(tmp_path / "fsdp", "latest").name == "step-000006"
