"""Pack images listed in a .lst file into .rec/.idx, like MXNet's tools/im2rec.py (our own implementation)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from smcv.data.images import encode_image, load_image
from smcv.data.lst import LstEntry
from smcv.data.recordio import IRHeader, RecordWriter, pack
from smcv.errors import DataError


def resize_shorter_side(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is `size`, keeping the aspect ratio (im2rec's integer arithmetic)."""
    w, h = img.size
    new = (size, h * size // w) if h > w else (w * size // h, size)
    return img if new == (w, h) else img.resize(new, Image.BILINEAR)


def _label(entry: LstEntry, pack_label: bool) -> float | np.ndarray:
    if not entry.labels:
        raise DataError(f".lst index {entry.index} ({entry.path}) has no label")
    if pack_label and len(entry.labels) > 1:
        return np.asarray(entry.labels, dtype=np.float32)
    return entry.labels[0]


def _image_bytes(path: Path, *, encoding: str, quality: int, resize: int, pass_through: bool) -> bytes:
    if pass_through:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise DataError(f"{path}: cannot read image file listed in the .lst ({exc})") from None
    img = load_image(path, "RGB")
    if resize:
        img = resize_shorter_side(img, resize)
    return encode_image(img, encoding, quality)


def pack_lst(
    entries: Iterable[LstEntry],
    root: Path,
    rec_path: str | os.PathLike,
    idx_path: str | os.PathLike | None,
    *,
    encoding: str = ".jpg",
    quality: int = 95,
    resize: int = 0,
    pass_through: bool = False,
    pack_label: bool = False,
) -> int:
    """Write one image record per entry (key = .lst index); return how many were written.

    The label is the first .lst label, or all of them as a float array with pack_label and more than one.
    Images are decoded to RGB, optionally resized (shorter side), and re-encoded, unless pass_through.
    """
    if resize < 0:
        raise ValueError(f"resize must be >= 0, got {resize}")
    root = Path(root)
    count = 0
    with RecordWriter(rec_path, idx_path) as writer:
        for entry in entries:
            header = IRHeader(0, _label(entry, pack_label), entry.index, 0)
            data = _image_bytes(root / entry.path, encoding=encoding, quality=quality, resize=resize,
                                pass_through=pass_through)
            writer.write(pack(header, data), key=entry.index)
            count += 1
    return count
