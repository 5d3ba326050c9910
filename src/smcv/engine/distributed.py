"""Process-group helpers: rank and world size from torchrun's environment, gathers that work single-process."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist

from smcv.contract import ENV_LOCAL_WORLD_SIZE


def world_size() -> int:
    """Number of training processes across all hosts."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_world_size() -> int:
    """Processes on this host (1 without torchrun)."""
    return int(os.environ.get(ENV_LOCAL_WORLD_SIZE, "1"))


def per_process_batch(host_batch: int) -> int:
    """A process's share of mini_batch_size, which is per host as in the built-ins: split across this host's GPUs.

    Across N hosts the effective batch is N x mini_batch_size (MXNet's dist_sync semantics)."""
    return max(1, host_batch // local_world_size())


def rank() -> int:
    """Global rank of this process."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """Rank of this process on its host (its GPU index)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on the process that writes the model, checkpoints and metric lines."""
    return rank() == 0


def is_distributed() -> bool:
    """True when a process group is (to be) used."""
    return world_size() > 1


def init(device: torch.device) -> None:
    """Join the process group started by torchrun (no-op for a single process)."""
    if is_distributed() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def shutdown() -> None:
    """Leave the process group."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's object, in rank order ([obj] for a single process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def any_rank(flag: bool, device: torch.device) -> bool:
    """True if the flag is set on any rank (used to stop all ranks together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def mean_across_ranks(value: float, weight: float, device: torch.device) -> float:
    """Weighted mean of a scalar over all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return value
    tensor = torch.tensor([value * weight, weight], device=device, dtype=torch.float64)
    dist.all_reduce(tensor)
    return float(tensor[0] / max(tensor[1].item(), 1e-12))
