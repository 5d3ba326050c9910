"""A task's job as smcv.train runs it (task, Trainer) on bench channels, and its two throughputs: through the
job's DataLoader, and the synthetic ceiling (the same step on one batch already on the device, no loader)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Subset

from benchlib.device import move, timed
from smcv.engine.loader import close_loader
from smcv.engine.loop import Trainer
from smcv.engine.signals import StopRequest
from smcv.tasks import get_task


@dataclass
class Job:
    """A Trainer built as smcv.train builds it, and the images of one of its training epochs."""

    trainer: Trainer
    images_per_epoch: int
    precision: str


def build_job(task_name: str, channels: dict[str, Path], hp_values: dict[str, str], device: torch.device,
              workers: Optional[int], max_images: int) -> Job:
    """The task prepares the channels and builds the model; the Trainer gets the job's settings (first
    max_images training images only, no validation)."""
    if device.type == "cuda":  # the flags smcv.train.pick_device sets for a job on a GPU
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    task = get_task(task_name)
    hp = task.schema().resolve(hp_values)
    settings = task.train_settings(hp)
    if workers is not None:
        settings.num_workers = workers
    data = task.prepare_data(hp, channels, {})
    data.train = Subset(data.train, range(min(len(data.train), max_images)))
    data.validation, data.sample_weights = None, None
    model = task.build_model(hp, data, channels)
    trainer = Trainer(task, hp, settings, data, model, device, None, StopRequest(), emit=lambda _line: None)
    return Job(trainer, len(trainer.train_loader) * settings.batch_size, trainer.precision.name)


def loader_throughput(job: Job, device: torch.device) -> float:
    """Images/s of a training epoch through the job's DataLoader, after one warm-up epoch."""
    job.trainer.train_epoch(1)
    return job.images_per_epoch / timed(lambda: job.trainer.train_epoch(2), device)


def synthetic_ceiling(job: Job, device: torch.device) -> float:
    """Images/s of the same number of steps on one batch already staged on the device (copied and, with augmentation
    on the device, augmented once): the step without input costs."""
    loader = job.trainer.train_loader
    steps = len(loader)
    batch = job.trainer.task.stage_batch(move(next(iter(loader)), device), device)
    close_loader(loader)
    job.trainer.train_loader = [batch] * min(2, steps)
    job.trainer.train_epoch(3)  # warm-up of the path without a loader
    job.trainer.train_loader = [batch] * steps
    seconds = timed(lambda: job.trainer.train_epoch(4), device)
    job.trainer.train_loader = loader
    return job.images_per_epoch / seconds
