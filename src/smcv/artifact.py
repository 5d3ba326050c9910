"""The model artifact: model.pt (a state_dict) and manifest.json, the only things serving reads."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torchvision

import smcv
from smcv.errors import ConfigError

MODEL_FILE = "model.pt"
MANIFEST_FILE = "manifest.json"
MANIFEST_VERSION = 1


def versions() -> dict[str, str]:
    """Versions of the libraries that produced an artifact."""
    return {"smcv": smcv.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


ARTIFACT_MODE = 0o644  # mkstemp creates 0600; artifacts must be readable by a server running as another user


def atomic_save(path: Path, write: Callable[[str], None]) -> None:
    """Let `write` fill a temporary file beside `path`, then give it the artifact mode and rename it onto `path`,
    so that readers never see a partial file; the temporary file is removed on any failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, ARTIFACT_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_synced(tmp: str, data: bytes) -> None:
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers never see a partial one."""
    atomic_save(path, lambda tmp: _write_synced(tmp, data))


def atomic_torch_save(obj: Any, path: Path) -> None:
    """torch.save through a temporary file and a rename."""
    atomic_save(path, lambda tmp: torch.save(obj, tmp))


def _write_manifest(model_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(model_dir / MANIFEST_FILE,
                       json.dumps(manifest, indent=2, sort_keys=True, default=_jsonable).encode())


def save_artifact(model_dir: Path, state_dict: dict[str, torch.Tensor], manifest: dict[str, Any]) -> None:
    """Write model.pt and manifest.json (flat layout, no symlinks)."""
    cpu_state = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_torch_save(cpu_state, model_dir / MODEL_FILE)
    _write_manifest(model_dir, {"manifest_version": MANIFEST_VERSION, **manifest, "versions": versions()})


def update_manifest(model_dir: Path, fields: dict[str, Any]) -> None:
    """Add or replace top-level fields of a saved manifest.json (atomically, same layout)."""
    _write_manifest(model_dir, {**load_manifest(model_dir), **fields})


def _jsonable(value: Any) -> Any:
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in manifest.json")


def load_manifest(model_dir: Path) -> dict[str, Any]:
    """Read manifest.json, with an error that says what is missing."""
    path = model_dir / MANIFEST_FILE
    if not path.exists():
        raise ConfigError(f"no {MANIFEST_FILE} in {model_dir}; the model directory must hold an smcv training job's model.tar.gz contents")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from exc


def load_state_dict(model_dir: Path) -> dict[str, torch.Tensor]:
    """Read model.pt safely (weights_only)."""
    path = model_dir / MODEL_FILE
    if not path.exists():
        raise ConfigError(f"no {MODEL_FILE} in {model_dir}; the model directory must hold an smcv training job's model.tar.gz contents")
    return torch.load(path, map_location="cpu", weights_only=True)
