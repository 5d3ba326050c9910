"""The JPEG rows of a training batch decoded on the training device (nvJPEG on a GPU) and resized there, joined with
the rows the DataLoader workers decoded into one zero-padded uint8 batch that the task's device augmentation
transforms (classification and detection)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import torch

from smcv.data.jpeg import EncodedJpeg, decode_or_pillow
from smcv.errors import DataError
from smcv.serving.prepare import Placement, place


@dataclass
class PendingJpeg:
    """One batch row still encoded: the JPEG, its row, the size the workers would have resized it to and an earlier
    resize before that (`via`: classification's ResizeShorter when AtLeast then upscales; else None)."""

    jpeg: EncodedJpeg
    row: int
    size: tuple[int, int]
    via: Optional[tuple[int, int]]

    def pin_memory(self) -> "PendingJpeg":
        """The JPEG's bytes pinned (DataLoader pin_memory)."""
        return replace(self, jpeg=self.jpeg.pin_memory())


def decoded_resized(pending: Sequence[PendingJpeg], device: torch.device) -> list[torch.Tensor]:
    """Each pending JPEG as uint8 CHW pixels at its size on `device`: decoded there together (per mode), resized
    there as the workers would have; a JPEG the device decoder refuses is decoded by Pillow,
    so a valid one still trains and a broken one raises DataError naming its file."""
    found: list[Optional[torch.Tensor]] = [None] * len(pending)
    for mode in sorted({p.jpeg.mode for p in pending}):
        numbers = [n for n, p in enumerate(pending) if p.jpeg.mode == mode]
        jpegs = [pending[n].jpeg for n in numbers]
        decoded = decode_or_pillow([j.data for j in jpegs], [(j.height, j.width) for j in jpegs],
                                   [j.source for j in jpegs], device, mode)
        for n, pixels in zip(numbers, decoded):
            if isinstance(pixels, DataError):
                raise pixels
            pixels = pixels.to(device, non_blocking=True)  # Pillow's fallback decodes on the CPU
            found[n] = place(pixels, Placement(pending[n].size, pending[n].size, via=pending[n].via))
    return found  # type: ignore[return-value]


def assemble(pixels: torch.Tensor, sizes: torch.Tensor, pending: Sequence[PendingJpeg],
             device: torch.device) -> torch.Tensor:
    """The uint8 batch (N, C, H, W) on `device`, each image top-left aligned and zero-padded to the
    largest: `pixels` holds the rows the workers decoded (in row order, padded among themselves), `pending` the
    others."""
    moved = pixels.to(device, non_blocking=True)
    if not pending:
        return moved
    decoded = decoded_resized(pending, device)
    height, width = (int(v) for v in sizes.max(dim=0).values)
    batch = torch.zeros((sizes.shape[0], decoded[0].shape[0], height, width), dtype=torch.uint8, device=device)
    jpeg_rows = {p.row for p in pending}
    pixel_rows = [row for row in range(sizes.shape[0]) if row not in jpeg_rows]
    if pixel_rows:
        batch[pixel_rows, :, : moved.shape[-2], : moved.shape[-1]] = moved
    for p, image in zip(pending, decoded):
        batch[p.row, :, : image.shape[-2], : image.shape[-1]] = image
    return batch


def padded(images: list[torch.Tensor]) -> torch.Tensor:
    """uint8 CHW images stacked, top-left aligned and zero-padded to the largest ((0, 1, 1, 1) for none)."""
    if not images:
        return torch.zeros((0, 1, 1, 1), dtype=torch.uint8)
    height, width = max(im.shape[-2] for im in images), max(im.shape[-1] for im in images)
    if all(tuple(im.shape[-2:]) == (height, width) for im in images):
        return torch.stack(images)
    batch = torch.zeros((len(images), images[0].shape[0], height, width), dtype=torch.uint8)
    for i, image in enumerate(images):
        batch[i, :, : image.shape[-2], : image.shape[-1]] = image
    return batch
