"""Training checkpoints in /opt/ml/checkpoints: atomic writes, newest-complete resume, last N kept."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Optional

import torch

from smcv.artifact import atomic_torch_save

log = logging.getLogger(__name__)

PATTERN = re.compile(r"^checkpoint-epoch(\d{4,})(-partial)?\.pt$")
KEEP = 2


def checkpoint_name(epoch: int, partial: bool) -> str:
    """File name for the state after `epoch` completed epochs (partial: stopped inside the next one)."""
    return f"checkpoint-epoch{epoch:04d}{'-partial' if partial else ''}.pt"


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints, oldest first (a partial one sorts after the complete one of the same epoch)."""
    found = []
    for path in folder.glob("checkpoint-epoch*.pt") if folder.is_dir() else []:
        match = PATTERN.match(path.name)
        if match:
            found.append((int(match.group(1)), bool(match.group(2)), path))
    return [p for _, _, p in sorted(found)]


def save_checkpoint(folder: Path, state: dict[str, Any], epoch: int, partial: bool = False) -> Path:
    """Write atomically, then prune to the newest KEEP files."""
    path = folder / checkpoint_name(epoch, partial)
    atomic_torch_save(state, path)
    for old in list_checkpoints(folder)[:-KEEP]:
        old.unlink(missing_ok=True)
    log.info("checkpoint saved: %s", path)
    return path


def load_latest(folder: Path) -> Optional[dict[str, Any]]:
    """The newest checkpoint that loads; a corrupt one (e.g. cut by SIGKILL) is skipped with a warning."""
    for path in reversed(list_checkpoints(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a truncated file from a killed job: fall back to an older one
            log.warning("skipping unreadable checkpoint %s: %s", path.name, exc)
            continue
        state["_path"] = str(path)
        return state
    return None
