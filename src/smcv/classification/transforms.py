"""Training and evaluation transforms on uint8 CHW tensors (torchvision transforms.v2)."""

from __future__ import annotations

from typing import Optional

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from smcv.serving.prepare import Placement, centre_crop

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUGMENTATIONS = ("crop", "crop_color", "crop_color_transform")


class GpuNormalize:
    """uint8 NCHW batch -> normalised float batch on the batch's device (4x less host-to-device traffic)."""

    def __init__(self, mean: list[float], std: list[float]) -> None:
        self.mean = torch.tensor(mean).view(1, -1, 1, 1) * 255.0
        self.std = torch.tensor(std).view(1, -1, 1, 1) * 255.0

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.mean.device != images.device:
            self.mean, self.std = self.mean.to(images.device), self.std.to(images.device)
        return (images.float() - self.mean) / self.std


def normalisation(channels: int) -> tuple[list[float], list[float]]:
    """ImageNet mean/std, averaged for grey input."""
    if channels == 1:
        return [sum(IMAGENET_MEAN) / 3], [sum(IMAGENET_STD) / 3]
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


class ResizeShorter(torch.nn.Module):
    """Resize so the shorter side is `size` (aspect kept)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return F.resize(img, self.size, antialias=True)


class AtLeast(torch.nn.Module):
    """Upscale (aspect kept) an image smaller than height x width so a crop of that size fits."""

    def __init__(self, height: int, width: int) -> None:
        super().__init__()
        self.height, self.width = height, width

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        h, w = img.shape[-2:]
        scale = max(self.height / h, self.width / w)
        if scale <= 1:
            return img
        return F.resize(img, [max(self.height, round(h * scale)), max(self.width, round(w * scale))], antialias=True)


#: ColorJitter of crop_color*: the built-in's offsets (hue +-36 of 360, saturation and brightness +-50 of 255)
BRIGHTNESS = 50 / 255
SATURATION = 50 / 255
HUE = 36 / 360
#: RandomAffine of crop_color_transform: rotation and x-shear ranges (degrees), scale range
DEGREES = 10.0
SHEAR = 5.7
SCALE = (0.8, 1.25)


def jitters_colour(kind: Optional[str]) -> bool:
    """Whether augmentation_type `kind` jitters brightness, saturation and hue."""
    return kind in ("crop_color", "crop_color_transform")


def warps(kind: Optional[str]) -> bool:
    """Whether augmentation_type `kind` applies a random affine warp."""
    return kind == "crop_color_transform"


def _augmentations(kind: Optional[str]) -> list[torch.nn.Module]:
    if not kind:
        return []
    ops: list[torch.nn.Module] = [v2.RandomHorizontalFlip()]
    if jitters_colour(kind):
        ops.append(v2.ColorJitter(brightness=BRIGHTNESS, saturation=SATURATION, hue=HUE))
    if warps(kind):
        ops.append(v2.RandomAffine(degrees=DEGREES, shear=(-SHEAR, SHEAR), scale=SCALE))
    return ops


def train_transform(image_shape: tuple[int, int, int], resize: Optional[int], augmentation: Optional[str]) -> v2.Compose:
    """Resize (optional), crop to image_shape (random with augmentation, else centre), augment; stays uint8."""
    c, h, w = image_shape
    ops: list[torch.nn.Module] = [ResizeShorter(resize)] if resize else []
    ops.append(AtLeast(h, w))
    ops.append(v2.RandomCrop((h, w)) if augmentation else v2.CenterCrop((h, w)))
    ops += _augmentations(augmentation)
    return v2.Compose(ops)


class Uncropped(dict):
    """A training sample's image, resized but not cropped, marked for the device path (`{"image": uint8 CHW}`)."""


class MarkUncropped(torch.nn.Module):
    """The last step of the device path's sample transform: the image leaves the worker marked as Uncropped."""

    def forward(self, image: torch.Tensor) -> Uncropped:
        return Uncropped(image=image.as_subclass(torch.Tensor))


def uncropped_transform(image_shape: tuple[int, int, int], resize: Optional[int]) -> v2.Compose:
    """The device path's per-sample part of train_transform: resize (optional) and upscale to fit the crop, marked
    Uncropped; the crop, flip, jitter and warp run on the training device for the whole batch (device_augment)."""
    c, h, w = image_shape
    ops: list[torch.nn.Module] = [ResizeShorter(resize)] if resize else []
    return v2.Compose([*ops, AtLeast(h, w), MarkUncropped()])


def eval_transform(image_shape: tuple[int, int, int], resize: Optional[int]) -> v2.Compose:
    """Validation and serving: shorter side to `resize` then centre crop, or a direct resize; stays uint8."""
    c, h, w = image_shape
    if resize:
        ops: list[torch.nn.Module] = [ResizeShorter(resize), AtLeast(h, w), v2.CenterCrop((h, w))]
    else:
        ops = [v2.Resize((h, w), antialias=True)]
    return v2.Compose(ops)


def eval_placement(image_shape: tuple[int, int, int], resize: Optional[int], height: int, width: int) -> Placement:
    """eval_transform's geometry for one height x width image, for serving's batched resize (smcv.serving.prepare):
    shorter side to `resize` (torchvision's rounding), upscaled when the crop would not fit, centre crop; or a direct
    resize."""
    _, crop_h, crop_w = image_shape
    if not resize:
        return Placement((crop_h, crop_w), (crop_h, crop_w))
    size, via = uncropped_geometry(image_shape, resize, height, width)
    return centre_crop(size, (crop_h, crop_w), via=via)


def uncropped_geometry(image_shape: tuple[int, int, int], resize: Optional[int], height: int,
                       width: int) -> tuple[tuple[int, int], Optional[tuple[int, int]]]:
    """uncropped_transform's geometry for one height x width image: its (height, width) after ResizeShorter
    (torchvision's rounding) and AtLeast, and the ResizeShorter size when AtLeast then upscales it (else None)."""
    _, crop_h, crop_w = image_shape
    new_h, new_w = height, width
    if resize:
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = resize, int(resize * long / short)
        new_h, new_w = (new_long, new_short) if width <= height else (new_short, new_long)
    scale = max(crop_h / new_h, crop_w / new_w)
    if scale <= 1:
        return (new_h, new_w), None
    upscaled = (max(crop_h, round(new_h * scale)), max(crop_w, round(new_w * scale)))
    return upscaled, (new_h, new_w) if resize else None
