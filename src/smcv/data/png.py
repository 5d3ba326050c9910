"""Indexed (palette) PNG writing with zlib directly: zlib compresses with the GIL released, Pillow's in-memory
encoder holds it, so masks encoded in concurrent request threads run in parallel (and beside the batching thread)."""

from __future__ import annotations

import struct
import zlib
from typing import Sequence

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: zlib level 6, as Pillow writes PNGs
COMPRESS_LEVEL = 6


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def indexed_png(indices: np.ndarray, palette: Sequence[int], level: int = COMPRESS_LEVEL) -> bytes:
    """An H x W uint8 array of palette indices as an 8-bit palette PNG (palette: flat r, g, b values, <= 256 colours)."""
    if indices.ndim != 2 or indices.dtype != np.uint8 or 0 in indices.shape:
        raise ValueError(f"need a non-empty H x W uint8 array, got {indices.dtype} {indices.shape}")
    if len(palette) % 3 or not 0 < len(palette) <= 768:
        raise ValueError(f"the palette needs 1 to 256 r, g, b triples, got {len(palette)} values")
    height, width = indices.shape
    rows = np.empty((height, width + 1), np.uint8)
    rows[:, 0] = 0  # filter type None on every row (the usual choice for palette images)
    rows[:, 1:] = indices
    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)
    return (_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"PLTE", bytes(palette))
            + _chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + _chunk(b"IEND", b""))
