"""Paired image/mask transforms with torchvision transforms.v2: the mask moves with the image, nearest-neighbour,
padded with 255 (ignore)."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from smcv.segmentation.params import IGNORE_INDEX, Geometry

BRIGHTNESS = 0.2
CONTRAST = 0.2
SCALE_RANGE = (0.5, 2.0)  # the built-in's random rescale of base_size
RESIZED_CROP_SCALE = (0.5, 1.0)  # area fraction kept by the random crop in image_size mode


def _fill() -> dict:
    return {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}


class PadTo(torch.nn.Module):
    """Pad right and bottom up to a square side (image with 0, mask with 255), leaving the origin in place."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, image: Any, mask: Any) -> tuple[Any, Any]:
        height, width = image.shape[-2:]
        padding = [0, 0, max(self.size - width, 0), max(self.size - height, 0)]
        return F.pad(image, padding, fill=0), F.pad(mask, padding, fill=IGNORE_INDEX)


class Letterbox(torch.nn.Module):
    """Scale the long side to `size` (letterbox_size, as serving does), then pad right and bottom to a square."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size, self.pad = size, PadTo(size)

    def forward(self, image: Any, mask: Any) -> tuple[Any, Any]:
        content = list(letterbox_size(*image.shape[-2:], self.size))
        return self.pad(F.resize(image, content, antialias=True), F.resize(mask, content))


def _augment(geometry: Geometry, flip: bool) -> list:
    if geometry.mode == "resize":
        steps = [v2.RandomResizedCrop((geometry.size, geometry.size), scale=RESIZED_CROP_SCALE, antialias=True)]
    else:
        steps = [v2.ScaleJitter((geometry.base, geometry.base), scale_range=SCALE_RANGE, antialias=True),
                 v2.RandomCrop(geometry.crop, pad_if_needed=True, fill=_fill())]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps.append(v2.ColorJitter(brightness=BRIGHTNESS, contrast=CONTRAST))
    return steps


def _fixed(geometry: Geometry, training: bool) -> list:
    """Deterministic geometry: resize to the square, or letterbox (long side, then pad) / crop for training."""
    if geometry.mode == "resize":
        return [v2.Resize((geometry.size, geometry.size), antialias=True)]
    if training:  # no augmentation: the built-in's scale at factor 1, then a crop of crop_size
        return [v2.Resize(size=None, max_size=geometry.base, antialias=True),
                v2.RandomCrop(geometry.crop, pad_if_needed=True, fill=_fill())]
    return [Letterbox(geometry.size)]


def build_transform(geometry: Geometry, training: bool, augment: bool = True, flip: bool = True) -> Callable:
    """A callable (Image, Mask) -> (Image, Mask), uint8 image and mask of the network's input size."""
    steps = _augment(geometry, flip) if training and augment else _fixed(geometry, training)
    return v2.Compose(steps)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 images (..., 3, H, W) to float32, scaled to 0-1 and standardised per channel."""
    m = torch.tensor(mean, device=images.device, dtype=torch.float32).view(-1, 1, 1)
    s = torch.tensor(std, device=images.device, dtype=torch.float32).view(-1, 1, 1)
    return (images.float() / 255.0 - m) / s


def letterbox_size(height: int, width: int, side: int) -> tuple[int, int]:
    """(height, width) after scaling the long side to `side`, aspect kept, rounded to the nearest pixel."""
    scale = side / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def content_size(mode: str, side: int, height: int, width: int) -> tuple[int, int]:
    """(height, width) an image of height x width fills in the square network input: all of it (resize) or the letterbox."""
    return (side, side) if mode == "resize" else letterbox_size(height, width, side)


def to_original_size(maps: torch.Tensor, content: tuple[int, int], height: int, width: int) -> torch.Tensor:
    """Per-class maps (C, side, side) of the network input back at the image's height x width: the padding cut off,
    then a bilinear resize (serving's answers and the validation metrics both come from here)."""
    cropped = maps[:, : content[0], : content[1]].unsqueeze(0)
    return torch.nn.functional.interpolate(cropped, size=(height, width), mode="bilinear", align_corners=False)[0]
