"""What a finished training run hands to the report and the model card."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from smcv.config import HyperParameters
from smcv.engine.loop import FitResult
from smcv.task_api import PreparedData, Task, TrainSettings


@dataclass
class TrainedJob:
    """The task, its settings and data, the network (any weights) and the fit result with the selected weights."""

    task: Task
    hp: HyperParameters
    settings: TrainSettings
    data: PreparedData
    model: torch.nn.Module
    result: FitResult
    device: torch.device
