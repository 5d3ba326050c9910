"""Pretrained weights: find them in the `pretrained`/`model` channels or baked into the image, and load them."""

from __future__ import annotations

import logging
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable, Optional

import torch

from smcv.artifact import MANIFEST_FILE, MODEL_FILE
from smcv.contract import ENV_WEIGHTS_DIR
from smcv.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_DIR = "/opt/smcv/weights"
PRETRAINED_CHANNELS = ("pretrained", "model")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")


def _weight_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def _pick(files: list[Path], names: Iterable[str]) -> Optional[Path]:
    wanted = [n.lower() for n in names]
    for name in wanted:
        for path in files:
            if path.name.lower() == name or path.stem.lower() == name or path.name.lower().startswith(name + "-"):
                return path
    return None


def find_pretrained(names: Iterable[str], channels: dict[str, Path]) -> Optional[Path]:
    """A weights file for one of `names` (e.g. 'resnet50'): channel `pretrained`, then `model`, then baked-in."""
    names = list(names)
    for channel in PRETRAINED_CHANNELS:
        if channel in channels:
            files = _weight_files(channels[channel])
            chosen = _pick(files, names) or (files[0] if len(files) == 1 else None)
            if chosen is not None:
                return chosen
    baked = Path(os.environ.get(ENV_WEIGHTS_DIR, DEFAULT_WEIGHTS_DIR))
    return _pick(_weight_files(baked), names)


def require_pretrained(names: Iterable[str], channels: dict[str, Path], what: str) -> Path:
    """Like find_pretrained, but a missing file is a ConfigError that says how to supply one."""
    names = list(names)
    found = find_pretrained(names, channels)
    if found is None:
        raise ConfigError(
            f"use_pretrained_model is on but no pretrained weights for {what} were found. Provide a "
            f"'pretrained' input channel holding one weights file (e.g. {names[0]}.pth, a torchvision/timm "
            f"state_dict), build the image with BAKE_WEIGHTS=1 to bake them into {DEFAULT_WEIGHTS_DIR}, "
            f"or set use_pretrained_model=0"
        )
    return found


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state_dict from .pt/.pth (weights_only), .safetensors, or an smcv model.tar.gz member."""
    if path.name.endswith(".safetensors"):
        try:
            from safetensors.torch import load_file  # optional dependency, only for .safetensors files
        except ImportError as exc:  # pragma: no cover - depends on the image
            raise ConfigError(f"{path.name} is a safetensors file but safetensors is not installed; supply a .pth") from exc
        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read pretrained weights {path.name}: {exc}. Supply a state_dict saved with torch.save") from exc
    for key in ("state_dict", "model", "model_state"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConfigError(f"{path.name} does not hold a state_dict (a mapping of names to tensors)")
    return obj


def load_matching(module: torch.nn.Module, state: dict[str, torch.Tensor], *, strip_prefixes: tuple[str, ...] = ("module.",),
                  skip: tuple[str, ...] = (), source: str = "") -> list[str]:
    """Copy every tensor whose name and shape match; return the names left at their initial values."""
    own = module.state_dict()
    cleaned = {}
    for key, value in state.items():
        for prefix in strip_prefixes:
            if key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    usable = {k: v for k, v in cleaned.items()
              if k in own and own[k].shape == v.shape and not any(k.startswith(s) for s in skip)}
    if not usable:
        raise ConfigError(f"pretrained weights {source} share no layer names/shapes with the network; "
                          "supply weights for the same architecture")
    module.load_state_dict(usable, strict=False)
    missing = sorted(set(own) - set(usable))
    log.info("loaded %d/%d tensors from %s; %d left initialised", len(usable), len(own), source or "pretrained weights", len(missing))
    return missing


def extract_model_tar(channel_dir: Path) -> Optional[Path]:
    """If a `model` channel holds model.tar.gz (an smcv artifact), extract it and return the folder."""
    tars = sorted(channel_dir.glob("*.tar.gz")) if channel_dir.is_dir() else []
    if not tars:
        return None
    target = Path(tempfile.mkdtemp(prefix="smcv-model-"))
    try:
        with tarfile.open(tars[0]) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise ConfigError(f"the model channel's {tars[0].name} cannot be extracted ({exc}); give the model.tar.gz "
                          "of an smcv training job") from exc
    return target


_EXTRACTED: dict[Path, Path] = {}


def model_channel_artifact(folder: Optional[Path]) -> Optional[Path]:
    """The folder of an smcv artifact given in a `model` channel (its model.tar.gz extracted once), or None."""
    if folder is None or not folder.is_dir():
        return None
    candidate = folder if (folder / MANIFEST_FILE).is_file() else _EXTRACTED.get(folder) or extract_model_tar(folder)
    if candidate is None or not (candidate / MANIFEST_FILE).is_file() or not (candidate / MODEL_FILE).is_file():
        return None
    if candidate != folder:
        _EXTRACTED[folder] = candidate
    return candidate
