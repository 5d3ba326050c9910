"""Tiny classification data: noisy images in class folders, and hyperparameters that train in seconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

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
