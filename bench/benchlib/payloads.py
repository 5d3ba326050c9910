"""Request bodies for serving benches: an encoded photo-like image per task (JPEG for IC and OD, PNG for SS)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

#: (content type, Pillow format) of the request body per task
BODY_TYPES = {"classification": ("image/jpeg", "JPEG"), "detection": ("image/jpeg", "JPEG"),
              "segmentation": ("image/png", "PNG")}


def image(width: int, height: int) -> Image.Image:
    """Smooth gradients with mild noise: compresses like a photograph, not like a flat colour or pure noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], axis=-1)
    noisy = base + rng.normal(0, 8, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def body(task: str, width: int, height: int) -> tuple[bytes, str]:
    """(encoded bytes, Content-Type) of the task's request image."""
    content_type, fmt = BODY_TYPES[task]
    out = io.BytesIO()
    image(width, height).save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue(), content_type
