"""Classification training augmentation of a whole batch on the training device: the DataLoader workers (or the
decode-once cache) give uint8 images resized but not cropped, or JPEGs left encoded for the device decoder
(device_decode), and draw the plan as the CPU path's torchvision transforms would (RandomCrop, RandomHorizontalFlip,
ColorJitter, RandomAffine); the device crops, flips, jitters and warps the batch at once."""

from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as nnf
from torch.utils.data import default_collate

from smcv.classification.transforms import (BRIGHTNESS, DEGREES, HUE, SATURATION, SCALE, SHEAR, Uncropped,
                                            jitters_colour, uncropped_geometry, warps)
from smcv.data.colour import adjust_brightness, adjust_hue, blend, gray, per_image
from smcv.data.device_decode import PendingJpeg, assemble, padded
from smcv.data.jpeg import EncodedJpeg

#: an image's uncropped (height, width) and the ResizeShorter size before an upscale, from its stored height, width
Geometry = Callable[[int, int], tuple[tuple[int, int], Optional[tuple[int, int]]]]

#: augmentation_device=auto moves images to the device uncropped only up to this many times the crop's area
MAX_UNCROPPED_AREA = 4.0
#: the jitter steps, in the order ColorJitter numbers them (contrast, number 1, is not used by the built-in's offsets)
_BRIGHTNESS_STEP, _SATURATION_STEP, _HUE_STEP = 0, 2, 3


@dataclass
class CropPlan:
    """Per image: the crop's top-left, the flip, the colour factors and their order, the affine warp."""

    top: torch.Tensor  # (N,) long
    left: torch.Tensor  # (N,) long
    flip: torch.Tensor  # (N,) bool
    brightness: torch.Tensor  # (N,) factor (1: none)
    saturation: torch.Tensor  # (N,) factor (1: none)
    hue: torch.Tensor  # (N,) shift in turns (0: none)
    order: torch.Tensor  # (N, 4) ColorJitter's random permutation of its four steps
    angle: torch.Tensor  # (N,) degrees (0: none)
    shear: torch.Tensor  # (N,) x-shear in degrees (0: none)
    scale: torch.Tensor  # (N,) (1: none)

    def pin_memory(self) -> "CropPlan":
        """The plan with pinned tensors (DataLoader pin_memory)."""
        return CropPlan(**{f.name: getattr(self, f.name).pin_memory() for f in fields(CropPlan)})


@dataclass
class CropBatch:
    """Resized, uncropped uint8 images (top-left aligned, zero-padded to the batch's largest) and the JPEG rows still
    encoded, every row's uncropped size, the plan and the crop size; augment_batch turns it into the training batch
    on the device."""

    images: torch.Tensor  # (M, C, H, W) uint8: the rows not pending, in row order
    sizes: torch.Tensor  # (N, 2) each image's uncropped height, width before padding
    plan: CropPlan
    crop: tuple[int, int]  # output height, width
    colour: bool  # ColorJitter (crop_color, crop_color_transform)
    affine: bool  # RandomAffine (crop_color_transform)
    pending: tuple[PendingJpeg, ...] = ()  # rows the device decodes (nvJPEG) and resizes

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    def pin_memory(self) -> "CropBatch":
        """The batch with pinned tensors (DataLoader pin_memory)."""
        return replace(self, images=self.images.pin_memory(), sizes=self.sizes.pin_memory(), plan=self.plan.pin_memory(),
                       pending=tuple(p.pin_memory() for p in self.pending))


def uniform(n: int, low: float, high: float) -> torch.Tensor:
    """n draws from U(low, high), as torchvision draws its factors."""
    return torch.empty(n).uniform_(low, high)


def draw_plan(sizes: torch.Tensor, crop: tuple[int, int], colour: bool, affine: bool) -> CropPlan:
    """The random crop, flip, jitter and warp of each image of a batch (sizes (N, 2): height, width, each at least
    the crop), with the ranges of the CPU path's transforms; a step that is off gets its identity."""
    n = sizes.shape[0]
    room = (sizes - torch.tensor(crop)).clamp(min=0) + 1
    start = (torch.rand(n, 2) * room.double()).floor().long()
    ones, zeros = torch.ones(n), torch.zeros(n)
    return CropPlan(
        top=start[:, 0], left=start[:, 1], flip=torch.rand(n) < 0.5,
        brightness=uniform(n, 1 - BRIGHTNESS, 1 + BRIGHTNESS) if colour else ones,
        saturation=uniform(n, 1 - SATURATION, 1 + SATURATION) if colour else ones,
        hue=uniform(n, -HUE, HUE) if colour else zeros,
        order=torch.stack([torch.randperm(4) for _ in range(n)]) if n else torch.zeros((0, 4), dtype=torch.long),
        angle=uniform(n, -DEGREES, DEGREES) if affine else zeros,
        shear=uniform(n, -SHEAR, SHEAR) if affine else zeros,
        scale=uniform(n, *SCALE) if affine else ones)


def crop_batch(images: list[Union[torch.Tensor, EncodedJpeg]], crop: tuple[int, int], colour: bool, affine: bool,
               geometry: Optional[Geometry] = None) -> CropBatch:
    """Pad resized, uncropped uint8 images into one batch, keep the JPEGs encoded (their uncropped size from
    `geometry`) and draw the plan over every row."""
    pending, pixels, sizes = [], [], []
    for row, image in enumerate(images):
        if isinstance(image, EncodedJpeg):
            if geometry is None:
                raise ValueError("a batch with encoded JPEGs needs the geometry of their resize")
            size, via = geometry(image.height, image.width)
            pending.append(PendingJpeg(image, row, size, via))
            sizes.append(list(size))
        else:
            pixels.append(image)
            sizes.append(list(image.shape[-2:]))
    size_rows = torch.tensor(sizes, dtype=torch.long).view(len(images), 2)
    return CropBatch(padded(pixels), size_rows, draw_plan(size_rows, crop, colour, affine), crop, colour, affine,
                     tuple(pending))


class DeviceCropCollate:
    """Collate for augmentation on the device: Uncropped samples and encoded JPEGs become a CropBatch with its plan
    drawn (targets stacked beside it); cropped samples (validation) are stacked by torch's default collate."""

    def __init__(self, crop: tuple[int, int], colour: bool, affine: bool, geometry: Optional[Geometry] = None) -> None:
        self.crop, self.colour, self.affine, self.geometry = crop, colour, affine, geometry

    def __call__(self, batch: list[tuple[Any, torch.Tensor]]) -> Any:
        if not isinstance(batch[0][0], (Uncropped, EncodedJpeg)):
            return default_collate(batch)
        images = [image if isinstance(image, EncodedJpeg) else image["image"] for image, _ in batch]
        targets = default_collate([target for _, target in batch])
        return crop_batch(images, self.crop, self.colour, self.affine, self.geometry), targets


def small_enough(uncropped: tuple[int, int], image_shape: tuple[int, int, int]) -> bool:
    """Whether an uncropped (height, width) image is at most MAX_UNCROPPED_AREA times image_shape's crop area."""
    return uncropped[0] * uncropped[1] <= MAX_UNCROPPED_AREA * image_shape[1] * image_shape[2]


def device_collate(image_shape: tuple[int, int, int], augmentation: str, resize: Optional[int]) -> DeviceCropCollate:
    """The collate of augmentation_type on the device: crop to image_shape, plus jitter and warp as the type says;
    encoded JPEGs get uncropped_transform's geometry (resize, then at least the crop)."""
    return DeviceCropCollate((image_shape[1], image_shape[2]), jitters_colour(augmentation), warps(augmentation),
                             functools.partial(uncropped_geometry, image_shape, resize))


def cut(images: torch.Tensor, plan: CropPlan, crop: tuple[int, int]) -> torch.Tensor:
    """Each image's crop window, gathered for the whole batch in one indexing step: (N, C, h, w)."""
    n, device = images.shape[0], images.device
    rows = plan.top.to(device).view(n, 1) + torch.arange(crop[0], device=device)
    cols = plan.left.to(device).view(n, 1) + torch.arange(crop[1], device=device)
    picked = images[torch.arange(n, device=device).view(n, 1, 1), :, rows.view(n, -1, 1), cols.view(n, 1, -1)]
    return picked.permute(0, 3, 1, 2)  # advanced indices first: (N, h, w, C) -> (N, C, h, w)


def flip(images: torch.Tensor, plan: CropPlan) -> torch.Tensor:
    """Mirror the images whose plan says so."""
    return torch.where(plan.flip.to(images.device).view(-1, 1, 1, 1), images.flip(-1), images)


def jitter(images: torch.Tensor, plan: CropPlan) -> torch.Tensor:
    """ColorJitter's brightness, saturation and hue in each image's own random order, truncating to whole levels as
    torchvision's uint8 kernels do; grey images get only brightness (saturation and hue leave them unchanged).
    Changes `images` in place (augment_batch gives it a fresh float copy) and returns it."""
    order = plan.order.to(images.device)
    colour = images.shape[1] == 3
    for position in range(order.shape[1]):
        step = order[:, position]
        for number, change in ((_BRIGHTNESS_STEP, _brightness), (_SATURATION_STEP, _saturation), (_HUE_STEP, _hue)):
            if number != _BRIGHTNESS_STEP and not colour:
                continue
            chosen = (step == number).nonzero().view(-1)
            if chosen.numel():
                images[chosen] = change(images[chosen], plan, chosen)
    return images


def _brightness(images: torch.Tensor, plan: CropPlan, chosen: torch.Tensor) -> torch.Tensor:
    return adjust_brightness(images, plan.brightness.to(images.device)[chosen])


def _saturation(images: torch.Tensor, plan: CropPlan, chosen: torch.Tensor) -> torch.Tensor:
    return blend(images, gray(images), per_image(plan.saturation.to(images.device)[chosen], images))


def _hue(images: torch.Tensor, plan: CropPlan, chosen: torch.Tensor) -> torch.Tensor:
    return adjust_hue(images, plan.hue.to(images.device)[chosen])


def affine_theta(plan: CropPlan, height: int, width: int) -> torch.Tensor:
    """(N, 2, 3) affine_grid matrices of RandomAffine's warp about the image centre (torchvision's inverse matrix
    for rotation, x-shear and scale, moved from pixel units to the grid's -1..1 units)."""
    rot = torch.deg2rad(plan.angle.double())
    shear = torch.deg2rad(plan.shear.double())
    a, c = torch.cos(rot), torch.sin(rot)
    b = -torch.cos(rot) * torch.tan(shear) - torch.sin(rot)
    d = -torch.sin(rot) * torch.tan(shear) + torch.cos(rot)
    scale = plan.scale.double()
    inverse = torch.stack([torch.stack([d, -b], dim=1), torch.stack([-c, a], dim=1)], dim=1) / scale.view(-1, 1, 1)
    units = torch.tensor([width / 2.0, height / 2.0], dtype=torch.float64)
    inverse = inverse * units.view(1, 1, 2) / units.view(1, 2, 1)  # pixel units -> grid units, per axis
    return torch.cat([inverse, torch.zeros(inverse.shape[0], 2, 1, dtype=torch.float64)], dim=2).float()


def warp(images: torch.Tensor, plan: CropPlan) -> torch.Tensor:
    """RandomAffine for the whole batch: nearest-neighbour sampling, 0 outside the image (torchvision's defaults)."""
    n, channels, height, width = images.shape
    theta = affine_theta(plan, height, width).to(images.device)
    grid = nnf.affine_grid(theta, [n, channels, height, width], align_corners=False)
    return nnf.grid_sample(images, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def augment_batch(batch: CropBatch, device: torch.device) -> torch.Tensor:
    """The batch augmented on `device`: float images holding uint8 levels (N, C, h, w), ready to normalise."""
    images = cut(assemble(batch.images, batch.sizes, batch.pending, device), batch.plan, batch.crop).float()
    images = flip(images, batch.plan)
    if batch.colour:
        images = jitter(images, batch.plan)
    if batch.affine:
        images = warp(images, batch.plan)
    return images

