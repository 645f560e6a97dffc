"""Fully sharded data parallelism (train.parallel=fsdp, PyTorch's FSDP2 `fully_shard`): each of torchrun's
processes holds 1/N of the weights, gradients and optimizer state, and gathers a block's weights only while it
computes that block. For models whose optimizer state does not fit one device; DDP (the default) keeps a copy.

Checkpoints (torch.distributed.checkpoint): every process writes its shards of the weights and the optimizer
state into the checkpoint folder (__R_0.distcp, .metadata); a resume at any number of processes, one included,
reads and reshards them. The main process also writes the whole model as model.safetensors, so that every
reader of run folders (`nanofm convert`, fine-tuning, `nanofm serve`) works as with any other run.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn

from nanofm.core.block import TransformerBlock


def shard_model(model: nn.Module, device: torch.device) -> nn.Module:
    """fully_shard every Transformer block, then the model (its embeddings, heads and tied weights together):
    parameters become DTensors sharded over all processes. In place; returns the model."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for module in model.modules():
        if isinstance(module, TransformerBlock):
            fully_shard(module, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def local(t: Tensor) -> Tensor:
    """This process's part of a (possibly sharded) tensor."""
    from torch.distributed.tensor import DTensor

    return t.to_local() if isinstance(t, DTensor) else t


def full(t: Tensor) -> Tensor:
    """The whole value of a (possibly sharded) tensor: a collective for a DTensor."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


def full_model_state(model: nn.Module) -> dict[str, Tensor]:
    """The whole state dict on the CPU of the main process (empty elsewhere); every process must call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Every process writes its shards of the weights and the optimizer state into `folder`."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)
    dcp.save({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=folder)


def load_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """Weights and optimizer state from a sharded checkpoint, resharded to this run's processes (one process,
    without a process group, included)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(model, optimizer)  # templates (the optimizer's state made if empty)
    dcp.load({"model": model_sd, "optimizer": optim_sd}, checkpoint_id=folder)
    set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd)
