"""Image grids for the report (Pillow): tiles of validation images with truth and prediction drawn on them."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

GRID_IMAGES = 8  # validation images shown in a grid
TILE = 192  # the longest side of one tile in pixels
PAD = 4
HEADER = 18


def to_pil(image: torch.Tensor) -> Image.Image:
    """A uint8 CHW tensor (1 or 3 channels) as an RGB image."""
    array = image.detach().cpu().numpy()
    array = np.repeat(array, 3, axis=0) if array.shape[0] == 1 else array[:3]
    return Image.fromarray(np.ascontiguousarray(array.transpose(1, 2, 0)).astype(np.uint8), "RGB")


def fit(tile: Image.Image, side: int = TILE) -> Image.Image:
    """The tile scaled so that its longest side is `side`."""
    scale = side / max(tile.size)
    size = (max(1, round(tile.width * scale)), max(1, round(tile.height * scale)))
    return tile.resize(size, Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR)


def grid(rows: Sequence[Sequence[Image.Image]], headers: Sequence[str], side: int = TILE) -> Image.Image:
    """Tiles in rows (one row per image), each fitted into side x side, under one header per column."""
    columns = max(len(r) for r in rows)
    out = Image.new("RGB", (columns * (side + PAD) + PAD, HEADER + len(rows) * (side + PAD) + PAD), (255, 255, 255))
    draw = ImageDraw.Draw(out)
    for c, text in enumerate(headers):
        draw.text((PAD + c * (side + PAD), 3), text, fill=(0, 0, 0))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            fitted = fit(tile, side)
            out.paste(fitted, (PAD + c * (side + PAD), HEADER + PAD + r * (side + PAD)))
    return out


def sample_grid(groups: Sequence[Sequence[Image.Image]], headers: Sequence[str], per_row: int) -> Image.Image:
    """One group of tiles per sample (e.g. image | truth | prediction), `per_row` groups a row, the group's headers
    repeated over each group of columns."""
    tiles = [tile for group in groups for tile in group]
    width = len(headers) * per_row
    rows = [tiles[i:i + width] for i in range(0, len(tiles), width)]
    return grid(rows, list(headers) * min(per_row, len(groups)))


def save_png(image: Image.Image, path: Path) -> None:
    """Write a grid as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG", optimize=True)
