"""SSD augmentation with torchvision transforms.v2 (boxes move with the image), then resize to image_shape; or, for
augmentation on the training device, decoding only."""

from __future__ import annotations

import math
from typing import Any

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from smcv.detection.augment_plan import CROP_SCALE

AUGMENTATIONS = ("ssd", "flip", "none")
#: zoom-out canvas fill: the ImageNet mean colour, as uint8
FILL_RGB = (124, 116, 104)


def _labels_and_flags(inputs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """SanitizeBoundingBoxes labels_getter: drop labels and difficult flags together with their boxes."""
    target = inputs[1]
    return target["labels"], target["difficult"]


class DetectionTransform:
    """(uint8 image tensor CHW, target with tv_tensors.BoundingBoxes) -> (uint8 size x size image, plain target)."""

    def __init__(self, size: int, augmentation: str = "ssd") -> None:
        if augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}, got {augmentation!r}")
        self.size, self.augmentation = size, augmentation
        self.photometric = v2.RandomPhotometricDistort(p=0.5)
        self.zoom_out = v2.RandomZoomOut(fill=list(FILL_RGB), side_range=(1.0, 4.0), p=0.5)
        self.iou_crop = v2.RandomIoUCrop()
        self.flip = v2.RandomHorizontalFlip(p=0.5)
        self.finish = v2.Compose([
            v2.Resize((size, size), antialias=True),
            v2.ClampBoundingBoxes(),
            v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_and_flags),
        ])

    def __call__(self, image: torch.Tensor, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.augmentation == "ssd":
            image, target = self.zoom_out(image, target)
            if len(target["labels"]):  # the IoU crop needs boxes to aim at; background images keep their view
                image, target = self.iou_crop(image, target)
        if self.augmentation in ("ssd", "flip"):
            image, target = self.flip(image, target)
        image, target = self.finish(image, target)
        if self.augmentation == "ssd":  # per-pixel, so done on the small resized image (several times cheaper)
            image = self.photometric(image)
        plain = {"boxes": target["boxes"].as_subclass(torch.Tensor).float(), "labels": target["labels"],
                 "difficult": target["difficult"]}
        return image.as_subclass(torch.Tensor).contiguous(), plain


class DecodeOnly:
    """(uint8 image, target) -> the image shrunk to at most size / 0.3 pixels per side (the most a crop keeps of a
    side is what a size-pixel output can show), boxes in original pixels and the original size, for RawBatch."""

    def __init__(self, size: int) -> None:
        self.cap = decode_cap(size)

    def __call__(self, image: torch.Tensor, target: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any]]:
        height, width = image.shape[-2:]
        shrunk = shrunk_size(int(height), int(width), self.cap)
        if shrunk != (height, width):
            image = F.resize(image.as_subclass(torch.Tensor), list(shrunk), antialias=True)
        return image.as_subclass(torch.Tensor).contiguous(), plain_target(target, int(height), int(width))


def decode_cap(size: int) -> int:
    """The most pixels per side DecodeOnly keeps for a size-pixel output."""
    return math.ceil(size / CROP_SCALE[0])


def shrunk_size(height: int, width: int, cap: int) -> tuple[int, int]:
    """DecodeOnly's (height, width) of a height x width image: each side at most `cap`."""
    return min(height, cap), min(width, cap)


def plain_target(target: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """A transforms.v2 target as RawBatch takes it: plain tensors and the original (height, width)."""
    return {"boxes": target["boxes"].as_subclass(torch.Tensor).float(), "labels": target["labels"],
            "difficult": target["difficult"], "original_size": (height, width)}


def make_target(boxes: torch.Tensor, labels: torch.Tensor, difficult: torch.Tensor, height: int, width: int) -> dict:
    """A transforms.v2 target: pixel XYXY boxes on the image canvas, labels and difficult flags."""
    return {"boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(height, width)),
            "labels": labels, "difficult": difficult}
