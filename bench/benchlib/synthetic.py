"""Small synthetic data sets written in the layouts of shared/data (pneumoniamnist, bccd, dsb2018), for runs
without --data; the same channel code then reads them as it reads the real sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DETECTION_CLASSES = ("RBC", "WBC", "Platelets")
CLASSIFICATION_CLASSES = ("normal", "pneumonia")


def _noise(rng: np.random.Generator, height: int, width: int, channels: int) -> np.ndarray:
    shape = (height, width) if channels == 1 else (height, width, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


def classification(root: Path, images: int, side: int = 28) -> Path:
    """pneumoniamnist's layout: root/train/<class>/<n>.png, grey side x side."""
    rng = np.random.default_rng(0)
    for i in range(images):
        folder = root / "train" / CLASSIFICATION_CLASSES[i % len(CLASSIFICATION_CLASSES)]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_noise(rng, side, side, 1), "L").save(folder / f"{i:05d}.png")
    return root


def _voc_xml(name: str, width: int, height: int, boxes: list[tuple[str, int, int, int, int]]) -> str:
    objects = "".join(f"<object><name>{label}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                      f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>" for label, x0, y0, x1, y1 in boxes)
    return (f"<annotation><filename>{name}</filename><size><width>{width}</width><height>{height}</height>"
            f"<depth>3</depth></size>{objects}</annotation>")


def detection(root: Path, images: int, width: int = 640, height: int = 480) -> Path:
    """bccd's layout: root/trainval/JPEGImages/<n>.jpg and Annotations/<n>.xml (Pascal VOC), 3 classes."""
    rng = np.random.default_rng(0)
    jpegs, notes = root / "trainval" / "JPEGImages", root / "trainval" / "Annotations"
    jpegs.mkdir(parents=True, exist_ok=True)
    notes.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        boxes = []
        for k in range(4):
            w, h = int(rng.integers(width // 10, width // 3)), int(rng.integers(height // 10, height // 3))
            x0, y0 = int(rng.integers(1, width - w)), int(rng.integers(1, height - h))
            boxes.append((DETECTION_CLASSES[(i + k) % len(DETECTION_CLASSES)], x0, y0, x0 + w, y0 + h))
        name = f"{i:05d}.jpg"
        Image.fromarray(_noise(rng, height, width, 3), "RGB").save(jpegs / name, quality=90)
        (notes / f"{i:05d}.xml").write_text(_voc_xml(name, width, height, boxes))
    return root


def segmentation(root: Path, images: int, side: int = 256) -> Path:
    """dsb2018's layout: root/images/<n>.png (RGB) and root/masks/<n>.png (0/255)."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        mask = np.zeros((side, side), np.uint8)
        y, x = int(rng.integers(0, side // 2)), int(rng.integers(0, side // 2))
        mask[y:y + side // 3, x:x + side // 3] = 255
        Image.fromarray(_noise(rng, side, side, 3), "RGB").save(root / "images" / f"{i:05d}.png")
        Image.fromarray(mask, "L").save(root / "masks" / f"{i:05d}.png")
    return root


WRITERS = {"classification": classification, "detection": detection, "segmentation": segmentation}


def write(task: str, root: Path, images: int) -> Path:
    """The synthetic set for a task under root, in the layout of its shared/data set."""
    return WRITERS[task](root, images)
