"""SSD augmentation of a whole batch on the training device: the DataLoader workers decode (or, on a GPU, leave JPEGs
for nvJPEG) and draw the plan (a few tensor operations per batch), the device does every pixel operation."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Optional, Union

import torch
import torch.nn.functional as F

from smcv.data.device_decode import PendingJpeg, assemble, padded
from smcv.data.jpeg import EncodedJpeg
from smcv.detection.augment_plan import Plan, draw_plan, move_boxes
from smcv.detection.photometric import distort
from smcv.detection.transforms import FILL_RGB, shrunk_size

@dataclass
class RawBatch:
    """Decoded uint8 images (top-left aligned, zero-padded to the batch's largest) and the JPEG rows still encoded,
    and what to make of them."""

    images: torch.Tensor  # (M, 3, H, W) uint8: the rows not pending, in row order
    decoded: torch.Tensor  # (N, 2) height, width of each decoded image (at most the original)
    original: torch.Tensor  # (N, 2) height, width of each original image: the plan's coordinates
    plan: Plan
    boxes: torch.Tensor  # (N, G, 4) pixel XYXY on the size x size output
    labels: torch.Tensor  # (N, G) 0-based class ids, -1 where there is no box
    size: int
    pending: tuple[PendingJpeg, ...] = ()  # rows the device decodes (nvJPEG) and shrinks to their decoded size

    def __len__(self) -> int:
        return int(self.decoded.shape[0])

    def pin_memory(self) -> "RawBatch":
        """The batch with pinned tensors (DataLoader pin_memory)."""
        return replace(self, images=self.images.pin_memory(), boxes=self.boxes.pin_memory(),
                       labels=self.labels.pin_memory(), plan=self.plan.pin_memory(),
                       pending=tuple(p.pin_memory() for p in self.pending))


def raw_batch(images: list[Union[torch.Tensor, EncodedJpeg]], originals: list[tuple[int, int]],
              boxes: list[torch.Tensor], labels: list[torch.Tensor], size: int, augmentation: str,
              photometric: bool = True, cap: Optional[int] = None) -> RawBatch:
    """Pad decoded images and boxes into one batch (JPEGs kept encoded, to be shrunk to at most `cap` a side as
    DecodeOnly would), draw its plan and move the boxes to the output."""
    n = len(images)
    pending, pixels, decoded_sizes = [], [], []
    for row, im in enumerate(images):
        if isinstance(im, EncodedJpeg):
            if cap is None:
                raise ValueError("a batch with encoded JPEGs needs the side cap of their decode")
            shrunk = shrunk_size(im.height, im.width, cap)
            pending.append(PendingJpeg(im, row, shrunk, None))
            decoded_sizes.append(list(shrunk))
        else:
            pixels.append(im)
            decoded_sizes.append(list(im.shape[-2:]))
    count = max([1] + [len(b) for b in boxes])
    box_rows = torch.zeros((n, count, 4))
    label_rows = torch.full((n, count), -1, dtype=torch.int64)
    for i, (b, lab) in enumerate(zip(boxes, labels)):
        box_rows[i, : len(b)], label_rows[i, : len(lab)] = b.reshape(-1, 4), lab
    sizes = torch.tensor(originals, dtype=torch.long).view(n, 2)
    plan, kept = draw_plan(sizes, box_rows, label_rows >= 0, augmentation, photometric)
    moved, survive = move_boxes(plan, box_rows, kept, size)
    decoded = torch.tensor(decoded_sizes, dtype=torch.long).view(n, 2)
    return RawBatch(padded(pixels), decoded, sizes, plan, moved, label_rows.masked_fill(~survive, -1), size,
                    tuple(pending))


def _spans(batch: RawBatch, i: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]] | None:
    """(source rows/columns in the decoded image, output rows/columns) of the image's part inside its crop."""
    (oh, ow), (dh, dw) = batch.original[i].tolist(), batch.decoded[i].tolist()
    zt, zl = batch.plan.offset[i].tolist()
    ct, cl, ch, cw = batch.plan.crop[i].tolist()
    x0, x1, y0, y1 = max(zl, cl), min(zl + ow, cl + cw), max(zt, ct), min(zt + oh, ct + ch)
    if x1 <= x0 or y1 <= y0:
        return None
    s = batch.size
    out = (round((y0 - ct) * s / ch), round((y1 - ct) * s / ch), round((x0 - cl) * s / cw), round((x1 - cl) * s / cw))
    if out[1] <= out[0] or out[3] <= out[2]:
        return None
    return _source_span(y0 - zt, y1 - zt, dh / oh, dh) + _source_span(x0 - zl, x1 - zl, dw / ow, dw), out


def _source_span(start: int, stop: int, scale: float, limit: int) -> tuple[int, int]:
    """Decoded-image pixels [first, last) covering original pixels [start, stop): at least one, never the padding."""
    first = min(math.floor(start * scale), limit - 1)
    return first, min(max(math.ceil(stop * scale), first + 1), limit)


def geometry(batch: RawBatch, images: torch.Tensor) -> torch.Tensor:
    """Zoom out, crop and resize (antialiased) each image into a size x size float image of uint8 levels, then flip."""
    s = batch.size
    fill = torch.tensor(FILL_RGB, dtype=torch.float32, device=images.device).view(1, 3, 1, 1)
    out = fill.expand(len(batch), 3, s, s).clone()
    for i in range(len(batch)):
        spans = _spans(batch, i)
        if spans is None:
            continue
        (sy0, sy1, sx0, sx1), (oy0, oy1, ox0, ox1) = spans
        part = images[i: i + 1, :, sy0:sy1, sx0:sx1].float()
        resized = F.interpolate(part, size=(oy1 - oy0, ox1 - ox0), mode="bilinear", antialias=True, align_corners=False)
        out[i, :, oy0:oy1, ox0:ox1] = resized[0].round().clamp(0, 255)
    return torch.where(batch.plan.flip.to(images.device).view(-1, 1, 1, 1), out.flip(-1), out)


def augment_on_device(batch: RawBatch, device: torch.device) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    """The batch augmented on `device`: 0-1 float images (N, 3, size, size) and one target per image (boxes and
    labels padded to the batch's box count, label -1 on rows without a box)."""
    images = assemble(batch.images, batch.decoded, batch.pending, device)
    x = distort(geometry(batch, images), batch.plan.photometric).div_(255.0)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    boxes, labels = batch.boxes.to(device, non_blocking=True), batch.labels.to(device, non_blocking=True)
    return x, [{"boxes": boxes[i], "labels": labels[i]} for i in range(len(batch))]
