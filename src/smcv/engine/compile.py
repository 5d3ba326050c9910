"""compile=1: the training network under torch.compile, and the one warning when compiling fails."""

from __future__ import annotations

import logging
from typing import Optional

import torch

from smcv.engine import distributed as dist_utils

log = logging.getLogger(__name__)


def compile_network(network: torch.nn.Module) -> Optional[torch.nn.Module]:
    """torch.compile(network) (compiled lazily, at the first call); None after warning when torch refuses at once."""
    try:
        return torch.compile(network)
    except Exception as exc:  # e.g. a Python version torch.compile does not support
        warn_fallback(exc)
        return None


def fallback_message(exc: BaseException) -> str:
    """One line naming the cause and the switch that silences it."""
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return (f"compile=1: torch.compile failed ({type(exc).__name__}: {first[:300]}); training continues in eager mode. "
            "Set compile=0 to train eagerly without trying (and without this warning)")


def warn_fallback(exc: BaseException) -> None:
    """Log fallback_message, from the main process only (every process falls back; one line says so)."""
    if dist_utils.is_main():
        log.warning("%s", fallback_message(exc))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock time covers it (used once, for the compile time)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
