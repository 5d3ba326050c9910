"""Training checkpoints in /opt/ml/checkpoints: atomic writes, newest-complete resume, last N kept, loaded with
weights_only=True (plain tensors, numbers, strings, lists and dicts; never pickled objects, which could run code)."""

from __future__ import annotations

import logging
import pickle
import random
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from smcv.artifact import atomic_torch_save
from smcv.errors import ConfigError

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
    """The newest checkpoint that loads; a corrupt one (e.g. cut by SIGKILL) is skipped with a warning, and one
    holding pickled objects is refused: whoever can write the checkpoint prefix must not run code in the job."""
    for path in reversed(list_checkpoints(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise ConfigError(
                f"refusing checkpoint {path.name} in {folder}: it holds pickled Python objects, not only tensors and "
                f"plain values, so loading it could run code ({str(exc).splitlines()[0][:160]}). smcv never writes "
                "such files: delete it from the checkpoint location (checkpoint_s3_uri) and check who can write there"
            ) from exc
        except Exception as exc:  # a truncated file from a killed job: fall back to an older one
            log.warning("skipping unreadable checkpoint %s: %s", path.name, exc)
            continue
        state["_path"] = str(path)
        return state
    return None


def rng_state() -> dict[str, Any]:
    """Every random generator's state as tensors and numbers, so that weights_only loading can restore it."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back what rng_state() saved."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    numpy = state["numpy"]
    np.random.set_state(("MT19937", numpy["keys"].numpy().astype(np.uint32), numpy["pos"], numpy["has_gauss"],
                         numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].tolist()), python["gauss"]))
