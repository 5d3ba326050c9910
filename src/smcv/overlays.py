"""Overlays for `smcv predict --overlay-dir`: the prediction drawn onto the request image (PNG)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Optional

from PIL import Image, ImageDraw

MASK_ALPHA = 0.5
#: box and label colours, cycled by class id
COLORS = ((230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
          (240, 50, 230), (210, 245, 60))


def _label(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, color: tuple[int, int, int]) -> None:
    left, top, right, bottom = draw.textbbox(xy, text)
    draw.rectangle((left - 1, top - 1, right + 1, bottom + 1), fill=color)
    draw.text(xy, text, fill=(255, 255, 255))


def classification_overlay(image: Image.Image, text: str) -> Image.Image:
    """The image with the predicted classes written in its top-left corner."""
    out = image.convert("RGB")
    _label(ImageDraw.Draw(out), (2, 2), text, COLORS[0])
    return out


def detection_overlay(image: Image.Image, detections: list[tuple[int, float, list[float]]], names: list[str],
                      min_score: float, show_scores: bool = True) -> Image.Image:
    """Boxes (fractions of the image side) with class name and score, for detections at or above min_score."""
    out = image.convert("RGB")
    draw = ImageDraw.Draw(out)
    for class_id, score, (xmin, ymin, xmax, ymax) in detections:
        if score < min_score:
            continue
        color = COLORS[class_id % len(COLORS)]
        box = (xmin * out.width, ymin * out.height, xmax * out.width, ymax * out.height)
        draw.rectangle(box, outline=color, width=max(1, round(min(out.size) / 150)))
        name = names[class_id] if 0 <= class_id < len(names) else str(class_id)
        _label(draw, (box[0] + 1, box[1] + 1), f"{name} {score:.2f}" if show_scores else name, color)
    return out


def segmentation_overlay(image: Image.Image, mask_png: bytes) -> Image.Image:
    """The indexed class mask (the server's image/png answer, palette colours) blended over the image."""
    mask = Image.open(io.BytesIO(mask_png)).convert("RGB").resize(image.size, Image.Resampling.NEAREST)
    return Image.blend(image.convert("RGB"), mask, MASK_ALPHA)


def save_overlay(image: Image.Image, folder: Path, source: Path) -> Optional[Path]:
    """Write <folder>/<source stem>.overlay.png."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source.stem}.overlay.png"
    image.save(path, format="PNG")
    return path
