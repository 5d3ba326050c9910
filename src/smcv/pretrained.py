"""Pretrained weights: what a job needs, where it is found (channels, baked in, cache, download), and loading."""

from __future__ import annotations

import logging
import os
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import torch

from smcv.artifact import MANIFEST_FILE, MODEL_FILE
from smcv.contract import ENV_WEIGHTS_DIR, ENV_WEIGHTS_URL
from smcv.errors import ConfigError
from smcv.weight_files import base_url, cached, check_sha256, download

log = logging.getLogger(__name__)

DEFAULT_WEIGHTS_DIR = "/opt/smcv/weights"
PRETRAINED_CHANNELS = ("pretrained", "model")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
#: torchvision's ImageNet files (each weights enum's DEFAULT, as bake_weights.py bakes them); the name ends in
#: the first hex digits of the file's SHA-256
TORCHVISION_FILES = {
    "resnet18": "resnet18-f37072fd.pth",
    "resnet34": "resnet34-b627a593.pth",
    "resnet50": "resnet50-11ad3fa6.pth",
    "resnet101": "resnet101-cd907fc2.pth",
    "resnet152": "resnet152-f82ba261.pth",
    "vgg16_features": "vgg16_features-amdegroot-88682ab5.pth",
}


@dataclass(frozen=True)
class WeightsNeed:
    """ImageNet weights a job needs before it reads data: what for, names to look for, the file to download."""

    what: str  # for messages, e.g. "the resnet34 encoder"
    names: tuple[str, ...]  # matched against file names in the channels and the baked-in folder, e.g. ("resnet50",)
    file_name: Optional[str] = None  # torchvision's file (TORCHVISION_FILES); None: nothing to download


def imagenet_need(what: str, names: Iterable[str], arch: Optional[str] = None) -> WeightsNeed:
    """A WeightsNeed whose download is torchvision's file for `arch` (default: the first name), when one exists."""
    names = tuple(names)
    return WeightsNeed(what, names, TORCHVISION_FILES.get(arch or names[0]))


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


def baked_dir() -> Path:
    """Where the image keeps baked-in weights: $SMCV_WEIGHTS_DIR, else /opt/smcv/weights."""
    return Path(os.environ.get(ENV_WEIGHTS_DIR, DEFAULT_WEIGHTS_DIR))


def _locate(names: list[str], channels: dict[str, Path]) -> Optional[tuple[Path, str]]:
    for channel in PRETRAINED_CHANNELS:
        if channel in channels:
            files = _weight_files(channels[channel])
            chosen = _pick(files, names) or (files[0] if len(files) == 1 else None)
            if chosen is not None:
                return chosen, f"the '{channel}' channel"
    chosen = _pick(_weight_files(baked_dir()), names)
    return (chosen, "baked into the image") if chosen is not None else None


def find_pretrained(names: Iterable[str], channels: dict[str, Path]) -> Optional[Path]:
    """A weights file for one of `names` (e.g. 'resnet50'): channel `pretrained`, then `model`, then baked-in."""
    found = _locate(list(names), channels)
    return found[0] if found else None


def resolve_weights(need: Optional[WeightsNeed], channels: dict[str, Path]) -> Optional[Path]:
    """The file for a need (None: none needed): channel `pretrained`, then `model`, baked in, the download cache, a
    download. Files whose names carry a SHA-256 prefix are checked. When every source fails: a one-line ConfigError
    naming the ways to supply the weights."""
    if need is None:
        return None
    names = [n for n in (need.file_name, *need.names) if n]
    found = _locate(names, channels)
    if found is not None:
        path, origin = found
        check_sha256(path, delete=False, origin=origin)
        log.info("pretrained weights for %s: %s (%s)", need.what, path, origin)
        return path
    if need.file_name is None:
        raise missing_weights(need, f"no published file for {need.names[0]} to download")
    path = cached(need.file_name)
    origin = "download cache"
    if path is None:
        try:
            path, origin = download(need.file_name), "downloaded"
        except OSError as exc:
            raise missing_weights(need, f"download of {base_url()}/{need.file_name} failed: {exc}") from exc
    log.info("pretrained weights for %s: %s (%s)", need.what, path, origin)
    return path


def missing_weights(need: WeightsNeed, reason: str) -> ConfigError:
    """The one-line error for weights that no source has: the three ways to supply them, and the way out."""
    example = f"{need.file_name} or {need.names[0]}.pth" if need.file_name else f"{need.names[0]}.pth"
    return ConfigError(
        f"use_pretrained_model is on but no pretrained weights for {need.what} were found ({reason}). Supply them "
        f"in a 'pretrained' input channel (one file, e.g. {example}, a torchvision "
        f"state_dict), bake them into the image with build_and_push.sh (the default where the build can download "
        f"them), or allow the job network access to {base_url()} ({ENV_WEIGHTS_URL} names a mirror); or set "
        f"use_pretrained_model=0 to start from random weights"
    )


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
