"""DataLoaders: worker count from CPUs and /dev/shm, distributed sampling, pinned memory on GPU."""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
from typing import Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from smcv.engine import distributed as dist_utils
from smcv.engine.sampling import WeightedSampler

log = logging.getLogger(__name__)
SMALL_SHM_BYTES = 1 << 30


def ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader workers leave SIGTERM/SIGINT to the trainer (tini -g signals the whole group): the main process
    finishes its step, checkpoints, and shuts the workers down itself."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_num_workers(device: torch.device) -> int:
    """Workers per process: several on GPU hosts, none on CPU (compute already uses every core)."""
    if device.type != "cuda":
        return 0
    cpus = os.cpu_count() or 1
    local = max(torch.cuda.device_count(), 1)
    return max(1, min(8, cpus // local - 1))


def check_shared_memory(num_workers: int) -> None:
    """Docker's default 64 MB /dev/shm kills DataLoader workers: switch to file_system sharing and say why."""
    if num_workers == 0:
        return
    try:
        free = shutil.disk_usage("/dev/shm").total
    except OSError:
        return
    if free < SMALL_SHM_BYTES:
        torch.multiprocessing.set_sharing_strategy("file_system")
        log.warning("/dev/shm is only %d MB: DataLoader workers share tensors through files instead "
                    "(run docker with --shm-size=2g, or set num_workers=0, to avoid this)", free >> 20)


class ShardSampler(Sampler[int]):
    """Every index exactly once across ranks (rank r gets r, r+world, ...): no padding duplicates in validation."""

    def __init__(self, length: int, rank: int, world: int) -> None:
        self.indices = list(range(rank, length, world))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def make_loader(dataset: Dataset, batch_size: int, *, train: bool, collate_fn, num_workers: Optional[int],
                device: torch.device, seed: int, drop_last: Optional[bool] = None,
                sample_weights: Optional[Sequence[float]] = None) -> DataLoader:
    """A DataLoader for one process of a possibly distributed job; training draws by sample_weights when given."""
    workers = default_num_workers(device) if num_workers is None else num_workers
    check_shared_memory(workers)
    sampler: Optional[Sampler[int]] = None
    if train and sample_weights is not None:
        sampler = WeightedSampler(sample_weights, dist_utils.rank(), dist_utils.world_size(), seed)
    elif dist_utils.is_distributed():
        sampler = (DistributedSampler(dataset, shuffle=True, seed=seed, drop_last=True) if train
                   else ShardSampler(len(dataset), dist_utils.rank(), dist_utils.world_size()))
    if drop_last is None:
        drop_last = train and len(dataset) > batch_size
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
        num_workers=workers, collate_fn=collate_fn, pin_memory=device.type == "cuda",
        drop_last=drop_last, persistent_workers=workers > 0, generator=generator,
        prefetch_factor=4 if workers > 0 else None, worker_init_fn=ignore_stop_signals if workers > 0 else None,
    )


def close_loader(loader: Optional[DataLoader]) -> None:
    """Stop a DataLoader's worker processes now (they are persistent and ignore SIGTERM, so nothing else would)."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is None:
        return
    shutdown = getattr(iterator, "_shutdown_workers", None)  # torch's own shutdown: sentinel, join, then terminate
    if shutdown is not None:
        shutdown()
    loader._iterator = None


def reap_worker_processes(grace_seconds: float = 5.0) -> int:
    """Kill child processes still alive after `grace_seconds` (returns how many), so the interpreter's exit
    handler, which joins every child, cannot wait forever on a worker that ignores SIGTERM."""
    killed = 0
    for child in multiprocessing.active_children():
        child.join(grace_seconds)
        if child.is_alive():
            child.kill()
            child.join(grace_seconds)
            killed += 1
    if killed:
        log.warning("killed %d data loader worker process(es) that did not stop by themselves", killed)
    return killed
