"""The one batched preprocessing of all tasks: uint8 images of any sizes -> resized, normalised batch on the device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torchvision.transforms.v2 import functional as F


@dataclass(frozen=True)
class Placement:
    """Where one image goes in the network input: resized to `resized` (height, width), then the `canvas` (height,
    width) window starting at `offset` (top, left) of the resized image is kept; what the window leaves uncovered
    (right and bottom, as letterboxing does) is 0 before normalisation. `via` is an earlier resize, for transforms
    that resize twice (classification's shorter side below the crop, then upscaled)."""

    resized: tuple[int, int]
    canvas: tuple[int, int]
    offset: tuple[int, int] = (0, 0)
    via: Optional[tuple[int, int]] = None


def centre_crop(resized: tuple[int, int], canvas: tuple[int, int], via: Optional[tuple[int, int]] = None) -> Placement:
    """Resize, then the central canvas window (torchvision CenterCrop's rounding)."""
    top = int(round((resized[0] - canvas[0]) / 2.0))
    left = int(round((resized[1] - canvas[1]) / 2.0))
    return Placement(resized, canvas, (max(0, top), max(0, left)), via)


def place(image: torch.Tensor, placement: Placement) -> torch.Tensor:
    """One uint8 CHW image resized (bilinear, antialiased) and cut or padded to its canvas, on its own device."""
    if placement.via is not None:
        image = F.resize(image, list(placement.via), antialias=True)
    resized = F.resize(image, list(placement.resized), antialias=True)
    top, left = placement.offset
    height = min(placement.canvas[0], resized.shape[-2] - top)
    width = min(placement.canvas[1], resized.shape[-1] - left)
    if (top, left) == (0, 0) and (height, width) == tuple(placement.canvas) == tuple(resized.shape[-2:]):
        return resized
    canvas = resized.new_zeros((resized.shape[0], *placement.canvas))
    canvas[:, :height, :width] = resized[:, top:top + height, left:left + width]
    return canvas


def normalise(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 NCHW -> float32 (x / 255 - mean) / std per channel (mean and std on the 0-1 scale)."""
    scale = torch.tensor(std, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1) * 255.0
    shift = torch.tensor(mean, dtype=torch.float32, device=batch.device).view(1, -1, 1, 1) * 255.0
    return (batch.float() - shift) / scale


def network_batch(images: Sequence[torch.Tensor], placements: Sequence[Placement], mean: Sequence[float],
                  std: Sequence[float], device: torch.device) -> torch.Tensor:
    """uint8 CHW images of any sizes -> one normalised float NCHW batch on `device` (resized there, after batching)."""
    if len(images) != len(placements) or not images:
        raise ValueError(f"need one placement per image, got {len(placements)} for {len(images)} images")
    canvases = {p.canvas for p in placements}
    if len(canvases) != 1:
        raise ValueError(f"the images of one batch must share a canvas, got {sorted(canvases)}")
    placed = [place(image.to(device, non_blocking=True), placement) for image, placement in zip(images, placements)]
    return normalise(torch.stack(placed), mean, std)
