"""Tiny segmentation data for the tests: images with a bright rectangle and its mask, in every input layout."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

TINY_HP = {"num_classes": "2", "algorithm": "unet", "use_pretrained_model": "0", "image_size": "32",
           "encoder_name": "resnet18", "encoder_depth": "3", "mini_batch_size": "4", "optimizer": "adam",
           "learning_rate": "0.01", "epochs": "2"}


def pair(seed: int, size=(40, 48), fg: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image (H, W, 3) with a bright rectangle and its mask (0 background, `fg` inside)."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    y, x = int(rng.integers(0, height // 2)), int(rng.integers(0, width // 2))
    image[y:y + height // 3, x:x + width // 3] += 160
    mask[y:y + height // 3, x:x + width // 3] = fg
    return image, mask


def png_bytes(array: np.ndarray, mode: Optional[str] = None, palette: Optional[list[int]] = None) -> bytes:
    """PNG-encode an array (mode 'P' uses the array as palette indices)."""
    if mode == "P":
        img = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array, np.uint8).tobytes())
        img.putpalette(palette or [v for i in range(256) for v in (i, i, i)])
    else:
        img = Image.fromarray(array)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def jpeg_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="JPEG", quality=95)
    return out.getvalue()


def builtin_layout(root: Path, counts=(("train", 6), ("validation", 3)), fg: int = 255, size=(40, 48)) -> dict[str, Path]:
    """The built-in's four channels: <split>/<n>.jpg and <split>_annotation/<n>.png; returns the channel dict."""
    channels = {}
    for split, count in counts:
        images, masks = root / split, root / f"{split}_annotation"
        images.mkdir(parents=True, exist_ok=True)
        masks.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            image, mask = pair(i + (100 if split == "validation" else 0), size, fg)
            (images / f"img{i}.jpg").write_bytes(jpeg_bytes(image))
            (masks / f"img{i}.png").write_bytes(png_bytes(mask))
        channels[split], channels[f"{split}_annotation"] = images, masks
    return channels


GT_COLORS = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.9},
             "1": {"class-name": "lesion", "hex-color": "#2ca02c", "confidence": 0.9}}


def ground_truth_manifest(channel: Path, count: int, attribute: str = "lesion-ref") -> Path:
    """A Ground Truth semantic-segmentation manifest with colour-mapped RGB masks, files under s3-like keys."""
    lines = []
    for i in range(count):
        image, mask = pair(200 + i)
        rgb = np.where(mask[..., None] > 0, np.array([0x2C, 0xA0, 0x2C], np.uint8), np.uint8(255))
        img_path = channel / "images" / f"x{i}.jpg"
        mask_path = channel / "job" / "annotations" / "consolidated-annotation" / "output" / f"{i}_mask.png"
        img_path.parent.mkdir(parents=True, exist_ok=True)
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        img_path.write_bytes(jpeg_bytes(image))
        mask_path.write_bytes(png_bytes(rgb.astype(np.uint8)))
        lines.append({"source-ref": f"s3://bucket/data/images/x{i}.jpg",
                      attribute: f"s3://bucket/out/job/annotations/consolidated-annotation/output/{i}_mask.png",
                      f"{attribute}-metadata": {"internal-color-map": GT_COLORS,
                                                "type": "groundtruth/semantic-segmentation", "job-name": "labeling-job/x"}})
    path = channel / "train.manifest"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path
