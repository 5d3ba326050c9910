"""Segmentation training augmentation of a whole batch on the training device: the DataLoader workers decode and draw
the plan, the device resizes, crops, pads, flips and jitters image and mask together."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from smcv.data.colour import adjust_brightness, adjust_contrast
from smcv.segmentation.pair_plan import PairPlan, draw_pair_plan
from smcv.segmentation.params import IGNORE_INDEX, Geometry

@dataclass
class PairBatch:
    """Decoded uint8 images and masks (top-left aligned, padded to the batch's largest) and their plan."""

    images: torch.Tensor  # (N, 3, H, W) uint8, zero padding
    masks: torch.Tensor  # (N, H, W) uint8, IGNORE_INDEX padding
    plan: PairPlan
    out: tuple[int, int]  # output height, width

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pin_memory(self) -> "PairBatch":
        """The batch with pinned tensors (DataLoader pin_memory)."""
        return replace(self, images=self.images.pin_memory(), masks=self.masks.pin_memory(), plan=self.plan.pin_memory())


def pair_batch(pairs: list[tuple[torch.Tensor, torch.Tensor]], geometry: Geometry, augment: bool, flip: bool,
               colour: bool = True) -> PairBatch:
    """Pad decoded (image, mask) pairs into one batch and draw its plan."""
    n = len(pairs)
    height, width = max(im.shape[-2] for im, _ in pairs), max(im.shape[-1] for im, _ in pairs)
    images = torch.zeros((n, 3, height, width), dtype=torch.uint8)
    masks = torch.full((n, height, width), IGNORE_INDEX, dtype=torch.uint8)
    for i, (image, mask) in enumerate(pairs):
        images[i, :, : image.shape[-2], : image.shape[-1]] = image
        masks[i, : mask.shape[-2], : mask.shape[-1]] = mask
    sizes = torch.tensor([list(im.shape[-2:]) for im, _ in pairs], dtype=torch.long).view(n, 2)
    plan, out = draw_pair_plan(sizes, geometry, augment, flip, colour)
    return PairBatch(images, masks, plan, out)


def geometry(batch: PairBatch, images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pair's window resized (image antialiased bilinear, mask nearest) and placed on the output, then flipped."""
    n, (out_h, out_w) = len(batch), batch.out
    image_out = torch.zeros((n, 3, out_h, out_w), dtype=torch.float32, device=images.device)
    mask_out = torch.full((n, out_h, out_w), IGNORE_INDEX, dtype=torch.uint8, device=images.device)
    for i in range(n):
        top, left, height, width = batch.plan.source[i].tolist()
        rh, rw = batch.plan.resized[i].tolist()
        at_y, at_x = batch.plan.at[i].tolist()
        y0, x0 = max(at_y, 0), max(at_x, 0)  # the part of the resized window that lands on the output
        y1, x1 = min(at_y + rh, out_h), min(at_x + rw, out_w)
        if y1 <= y0 or x1 <= x0:
            continue
        image = images[i: i + 1, :, top: top + height, left: left + width].float()
        mask = masks[i: i + 1, None, top: top + height, left: left + width].float()
        if (rh, rw) != (height, width):
            image = F.interpolate(image, size=(rh, rw), mode="bilinear", antialias=True, align_corners=False)
            mask = F.interpolate(mask, size=(rh, rw), mode="nearest")
        cut = (slice(y0 - at_y, y1 - at_y), slice(x0 - at_x, x1 - at_x))
        image_out[i, :, y0:y1, x0:x1] = image[0, :, cut[0], cut[1]].round().clamp(0, 255)
        mask_out[i, y0:y1, x0:x1] = mask[0, 0, cut[0], cut[1]].to(torch.uint8)
    flip = batch.plan.flip.to(images.device)
    image_out = torch.where(flip.view(-1, 1, 1, 1), image_out.flip(-1), image_out)
    mask_out = torch.where(flip.view(-1, 1, 1), mask_out.flip(-1), mask_out)
    return image_out, mask_out


def jitter(images: torch.Tensor, plan: PairPlan) -> torch.Tensor:
    """ColorJitter's brightness and contrast with per-image factors and order, truncating to whole levels as
    torchvision's uint8 kernels do."""
    def brightness(x: torch.Tensor) -> torch.Tensor:
        return adjust_brightness(x, plan.brightness)

    def contrast(x: torch.Tensor) -> torch.Tensor:
        return adjust_contrast(x, plan.contrast)

    first = plan.brightness_first.to(images.device).view(-1, 1, 1, 1)
    return torch.where(first, contrast(brightness(images)), brightness(contrast(images)))


def augment_pairs(batch: PairBatch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch augmented on `device`: float images of uint8 levels (N, 3, h, w) and uint8 masks (N, h, w)."""
    images = batch.images.to(device, non_blocking=True)
    masks = batch.masks.to(device, non_blocking=True)
    image_out, mask_out = geometry(batch, images, masks)
    return jitter(image_out, batch.plan), mask_out
