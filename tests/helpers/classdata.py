"""Tiny classification data: noisy images in class folders or Ground Truth manifests (File and Pipe mode), and
hyperparameters that train in seconds."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from smcv.data.recordio import RecordWriter

TINY_CLASSIFICATION = {"num_classes": 2, "num_training_samples": 16, "num_layers": 18, "image_shape": "1,16,16",
                       "epochs": 2, "mini_batch_size": 8, "learning_rate": 0.01, "optimizer": "adam"}


def write_image(path: Path, value: int, size: int = 16, mode: str = "L", seed: int = 0) -> Path:
    """A noisy image around `value` (grey, RGB or RGBA), PNG or JPEG by suffix."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = np.clip(rng.normal(value, 12, (size, size, channels)), 0, 255).astype("uint8")
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_class_folders(root: Path, per_class: int, classes=("normal", "pneumonia"), size: int = 16,
                        mode: str = "L", suffix: str = ".png") -> list[Path]:
    """Class folders whose images differ in brightness (easy to learn)."""
    paths = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            paths.append(write_image(root / name / f"{i}{suffix}", 50 + 150 * c, size, mode, seed=1000 * c + i))
    return paths


def write_manifest(channel: Path, per_class: int, classes=("cat", "dog"), name: str = "train.manifest",
                   metadata: bool = True) -> Path:
    """Images under channel/images and a Ground Truth single-label manifest naming them by s3:// URI."""
    lines = []
    for c, cls in enumerate(classes):
        for i in range(per_class):
            image = write_image(channel / "images" / f"{cls}{i}.png", 50 + 150 * c, seed=1000 * c + i)
            line = {"source-ref": f"s3://bucket/job/images/{image.name}", "class": str(c)}
            if metadata:
                line["class-metadata"] = {"class-name": cls, "type": "groundtruth/image-classification"}
            lines.append(json.dumps(line))
    path = channel / name
    path.write_text("\n".join(lines) + "\n")
    return path


def png_bytes(value: int, seed: int = 0, size: int = 16) -> bytes:
    """A noisy grey PNG around `value`, as bytes."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(np.clip(rng.normal(value, 12, (size, size)), 0, 255).astype("uint8"), "L").save(buf, format="PNG")
    return buf.getvalue()


def write_pipe_manifest(fifo: Path, labels: list, metadata: Optional[list] = None) -> Path:
    """A plain file standing in for a Pipe-mode FIFO of an augmented manifest: image, label[, metadata] records."""
    fifo.parent.mkdir(parents=True, exist_ok=True)
    with RecordWriter(fifo) as writer:
        for i, label in enumerate(labels):
            first = label[0] if isinstance(label, list) and label else label
            writer.write(png_bytes(50 + 150 * (int(first) % 2), seed=i))
            writer.write(json.dumps(label).encode())
            if metadata is not None:
                writer.write(json.dumps(metadata[i]).encode())
    return fifo
