"""Sharding the model over processes with PyTorch's FSDP2 (``sharding = "fsdp"``), and checkpoints that
any number of processes reads back (``torch.distributed.checkpoint``, DCP).

The model knows nothing of it: :func:`shard` applies ``torch.distributed.fsdp.fully_shard`` from outside,
each transformer block one unit, then the root (what the loop calls) for the rest: embeddings, final
norm, output projection. Every parameter becomes a DTensor of which each process keeps 1/N; a unit's
forward gathers its parameters just before it runs and frees them after; the backward reduce-scatters
the gradients, averaged over the processes as DDP averages them. It runs over gloo on CPU processes
(accelerate's own FSDP runs on GPUs only) as over nccl on GPUs. The optimiser is built after sharding:
it holds the DTensors.

A sharded checkpoint (:func:`save_sharded`) is a DCP folder of model and optimiser: every process writes
its own shards, and any number of processes (one, with no process group at all) reads it back whole or
re-sharded (:func:`load_sharded`).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

DCP_WARNING = r".*torch\.distributed is disabled, unavailable or uninitialized.*"  # one process: meant so


def shard(root: nn.Module, blocks: Iterable[nn.Module], device: torch.device) -> nn.Module:
    """``fully_shard`` each of ``blocks``, then ``root`` (in place, on ``device``'s kind of mesh over every
    process of the default group); returns ``root``."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    root.to(device)
    for block in blocks:
        fully_shard(block, mesh=mesh)
    return fully_shard(root, mesh=mesh)


def is_sharded(module: nn.Module) -> bool:
    """Whether ``module`` went through :func:`shard` (an FSDP2 module)."""
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


@contextlib.contextmanager
def no_gradient_sync(module: nn.Module):
    """FSDP2's ``no_sync``: gradients of the micro-batches run in it stay on each process, unreduced,
    until a backward pass outside it reduces them all."""
    module.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        module.set_requires_gradient_sync(True)


def bare_optimizer(optimizer) -> torch.optim.Optimizer:
    """The torch optimiser inside accelerate's wrapper (DCP reads the parameters it holds)."""
    return getattr(optimizer, "optimizer", optimizer)


def whole_state(module: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every process calls it: the main process gets each tensor of ``module`` (sharded or not) whole,
    on the CPU, its name without ``prefix``; the other processes an empty dict."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k.removeprefix(prefix): v for k, v in state.items()}


def _templates(module: nn.Module, optimizer) -> dict:
    """The model's and the optimiser's state, keyed by parameter name: what DCP writes, and the tensors
    (of this process's shapes and shards) it reads into."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(flatten_optimizer_state_dict=True)
    model_state, optimizer_state = get_state_dict(module, bare_optimizer(optimizer), options=options)
    return {"model": model_state, "optimizer": optimizer_state}


def save_sharded(folder: Path, module: nn.Module, optimizer) -> None:
    """Every process writes its shards of model and optimiser into ``folder`` (DCP)."""
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DCP_WARNING)
        dcp.save(_templates(module, optimizer), checkpoint_id=folder)


def load_sharded(folder: Path, module: nn.Module, optimizer) -> None:
    """Read what :func:`save_sharded` wrote, by any number of processes, into ``module`` and ``optimizer``
    (as sharded as they are here)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    state = _templates(module, optimizer)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", DCP_WARNING)
        dcp.load(state, checkpoint_id=folder)
    set_state_dict(module, bare_optimizer(optimizer), model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"], options=StateDictOptions(flatten_optimizer_state_dict=True))
