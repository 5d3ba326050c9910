"""The device a bench runs on, its name for the JSON, and wall-clock timing that waits for the device."""

from __future__ import annotations

import time
from typing import Callable, Optional

import torch


def pick_device(name: Optional[str]) -> torch.device:
    """`--device` as given, else cuda when available, else cpu."""
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def describe(device: torch.device) -> str:
    """The GPU's name, or 'cpu'."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def synchronize(device: torch.device) -> None:
    """Wait for queued work on a GPU (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(run: Callable[[], object], device: torch.device) -> float:
    """Seconds `run()` takes, measured from an idle device to an idle device."""
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def move(value, device: torch.device):
    """Tensors inside tuples, lists and dicts moved to the device (non-tensors unchanged)."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, (tuple, list)):
        return type(value)(move(v, device) for v in value)
    if isinstance(value, dict):
        return {k: move(v, device) for k, v in value.items()}
    return value
