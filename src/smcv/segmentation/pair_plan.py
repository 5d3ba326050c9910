"""Random segmentation training geometry and colour for a whole batch, drawn as the CPU path's torchvision transforms
draw them (ScaleJitter + RandomCrop, or RandomResizedCrop; flip; ColorJitter of brightness and contrast)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from smcv.segmentation.params import Geometry
from smcv.segmentation.transforms import BRIGHTNESS, CONTRAST, RESIZED_CROP_SCALE, SCALE_RANGE

RESIZED_CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)  # torchvision's RandomResizedCrop default
RESIZED_CROP_TRIALS = 10


@dataclass
class PairPlan:
    """Per image: a window of the original, the size it is resized to, where that lands on the output (negative:
    cut off), the flip and the colour factors. Image and mask follow the same plan."""

    source: torch.Tensor  # (N, 4) top, left, height, width on the original image
    resized: torch.Tensor  # (N, 2) height, width the window is resized to
    at: torch.Tensor  # (N, 2) top, left of the resized window on the output
    flip: torch.Tensor  # (N,) bool
    brightness: torch.Tensor  # (N,) factor (1: none)
    contrast: torch.Tensor  # (N,) factor (1: none)
    brightness_first: torch.Tensor  # (N,) bool: brightness before contrast (ColorJitter's random order)

    def pin_memory(self) -> "PairPlan":
        """The plan with pinned tensors (DataLoader pin_memory)."""
        return PairPlan(**{f.name: getattr(self, f.name).pin_memory() for f in fields(PairPlan)})


def _scale_and_crop(sizes: torch.Tensor, geometry: Geometry, jitter: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """ScaleJitter((base, base), (0.5, 2)) (factor 1 without jitter) then RandomCrop(crop, pad_if_needed): the resized
    image size (N, 2) and the crop's top-left on it (N, 2), negative where the crop reaches into the padding."""
    n = sizes.shape[0]
    factor = (SCALE_RANGE[0] + torch.rand(n) * (SCALE_RANGE[1] - SCALE_RANGE[0])) if jitter else torch.ones(n)
    ratio = torch.minimum(geometry.base / sizes[:, 0].double(), geometry.base / sizes[:, 1].double()) * factor.double()
    resized = (sizes.double() * ratio.unsqueeze(1) + 1e-6).floor().long().clamp(min=1)  # long side: exactly base
    crop = geometry.crop
    shortfall = (crop - resized).clamp(min=0)  # pad_if_needed pads both sides by the shortfall
    padded = resized + 2 * shortfall
    start = (torch.rand(n, 2) * (padded - crop + 1).double()).floor().long()
    return resized, start - shortfall


def _resized_crop(sizes: torch.Tensor) -> torch.Tensor:
    """RandomResizedCrop(scale=(0.5, 1)) windows (N, 4): top, left, height, width, with its central fallback."""
    n, trials = sizes.shape[0], RESIZED_CROP_TRIALS
    height, width = sizes[:, 0:1].double(), sizes[:, 1:2].double()
    area = height * width * (RESIZED_CROP_SCALE[0] + torch.rand(n, trials).double() * (RESIZED_CROP_SCALE[1] - RESIZED_CROP_SCALE[0]))
    log_low, log_high = math.log(RESIZED_CROP_RATIO[0]), math.log(RESIZED_CROP_RATIO[1])
    aspect = torch.exp(log_low + torch.rand(n, trials).double() * (log_high - log_low))
    w, h = torch.sqrt(area * aspect).round(), torch.sqrt(area / aspect).round()
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.int().argmax(dim=1)
    rows = torch.arange(n)
    w, h = w[rows, first], h[rows, first]
    top = (torch.rand(n).double() * (height[:, 0] - h + 1)).floor()
    left = (torch.rand(n).double() * (width[:, 0] - w + 1)).floor()
    in_ratio = width[:, 0] / height[:, 0]
    fw = torch.where(in_ratio > RESIZED_CROP_RATIO[1], (height[:, 0] * RESIZED_CROP_RATIO[1]).round(), width[:, 0])
    fh = torch.where(in_ratio < RESIZED_CROP_RATIO[0], (width[:, 0] / RESIZED_CROP_RATIO[0]).round(), height[:, 0])
    found = fits.any(dim=1)
    window = torch.stack([top, left, h, w], dim=1)
    fallback = torch.stack([((height[:, 0] - fh) / 2).floor(), ((width[:, 0] - fw) / 2).floor(), fh, fw], dim=1)
    return torch.where(found.unsqueeze(1), window, fallback).long()


def _factors(n: int, spread: float, enabled: bool) -> torch.Tensor:
    """ColorJitter factors uniform in [1 - spread, 1 + spread] (ones when not enabled)."""
    return 1.0 - spread + 2.0 * spread * torch.rand(n) if enabled and spread else torch.ones(n)


def draw_pair_plan(sizes: torch.Tensor, geometry: Geometry, augment: bool, flip: bool,
                   colour: bool = True) -> tuple[PairPlan, tuple[int, int]]:
    """The batch's plan for images of (N, 2) sizes (height, width), and the output size (height, width); without
    `augment` the plan is the CPU path's fixed training geometry (scale 1 and a random crop, or the whole image)."""
    n = sizes.shape[0]
    whole = torch.cat([torch.zeros(n, 2, dtype=torch.long), sizes], dim=1)
    if geometry.mode == "resize":
        source = _resized_crop(sizes) if augment else whole
        resized = torch.full((n, 2), geometry.size, dtype=torch.long)
        at, out = torch.zeros(n, 2, dtype=torch.long), (geometry.size, geometry.size)
    else:
        resized, start = _scale_and_crop(sizes, geometry, augment)
        source, at, out = whole, -start, (geometry.crop, geometry.crop)
    flips = (torch.rand(n) < 0.5) & (augment and flip)
    brightness = _factors(n, BRIGHTNESS, augment and colour)
    contrast = _factors(n, CONTRAST, augment and colour)
    return PairPlan(source, resized, at, flips, brightness, contrast, torch.rand(n) < 0.5), out
