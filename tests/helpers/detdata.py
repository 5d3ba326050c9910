"""Synthetic detection data: coloured squares on grey noise, written in every input format the task reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from smcv.data.recordio import IRHeader, RecordWriter, pack

COLOURS = [(220, 30, 30), (30, 200, 30), (40, 40, 230)]
TINY_HP = {"num_classes": 2, "num_training_samples": 6, "base_network": "tiny", "use_pretrained_model": 0,
           "image_shape": 300, "epochs": 1, "mini_batch_size": 4, "augmentation": "none"}


def scene(i: int, size: int = 64, classes: int = 2) -> list[tuple[int, int, int, int, int]]:
    """Objects (class, left, top, width, height) of image i; every fifth image has none."""
    if i % 5 == 4:
        return []
    rng = np.random.default_rng(i)
    objects = []
    for k in range(1 + i % 2):
        w, h = (int(v) for v in rng.integers(size // 4, size // 2, 2))
        left, top = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        objects.append(((i + k) % classes, left, top, w, h))
    return objects


def draw(objects, size: int = 64, seed: int = 0) -> Image.Image:
    """Grey noise with a filled square per object, coloured by class."""
    rng = np.random.default_rng(seed)
    array = np.clip(rng.normal(110, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    for cls, left, top, w, h in objects:
        array[top:top + h, left:left + w] = COLOURS[cls % len(COLOURS)]
    return Image.fromarray(array, "RGB")


def save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def annotation(objects, size: int = 64, ids=None) -> dict:
    """A Ground Truth / built-in JSON bounding-box label."""
    return {"image_size": [{"width": size, "height": size, "depth": 3}],
            "annotations": [{"class_id": (ids[c] if ids else c), "left": l, "top": t, "width": w, "height": h}
                            for c, l, t, w, h in objects]}


def json_channels(root: Path, split: str, indices, size: int = 64, categories: bool = True) -> dict[str, Path]:
    """The built-in's image + JSON channels: <split>/ (images) and <split>_annotation/ (one JSON per image)."""
    images, notes = root / split, root / f"{split}_annotation"
    for i in indices:
        objects = scene(i, size)
        save(draw(objects, size, seed=i), images / f"img{i}.jpg")
        label = {"file": f"img{i}.jpg", **annotation(objects, size)}
        if categories:
            label["categories"] = [{"class_id": 0, "name": "red"}, {"class_id": 1, "name": "green"}]
        notes.mkdir(parents=True, exist_ok=True)
        (notes / f"img{i}.json").write_text(json.dumps(label))
    return {split: images, f"{split}_annotation": notes}


GT_IDS = {0: 3, 1: 7}  # non-contiguous Ground Truth class ids
GT_CLASS_MAP = {"3": "red", "7": "green"}


def manifest_lines(folder: Path, indices, size: int = 64, attr: str = "bounding-box") -> list[dict]:
    """Ground Truth output lines for images saved in folder (s3 refs whose file names match)."""
    lines = []
    for i in indices:
        objects = scene(i, size)
        save(draw(objects, size, seed=i), folder / "images" / f"img{i}.png")
        lines.append({"source-ref": f"s3://bucket/job/images/img{i}.png", attr: annotation(objects, size, GT_IDS),
                      f"{attr}-metadata": {"class-map": GT_CLASS_MAP, "type": "groundtruth/object-detection",
                                           "human-annotated": "yes"}})
    return lines


def manifest_channel(root: Path, split: str, indices, size: int = 64) -> Path:
    """A File-mode channel with output.manifest and the images it references."""
    folder = root / split
    lines = manifest_lines(folder, indices, size)
    (folder / "output.manifest").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def pipe_manifest(data_dir: Path, split: str, indices, size: int = 64, metadata: bool = False) -> Path:
    """A Pipe-mode FIFO stand-in <split>_0: RecordIO records image, label[, metadata] per line."""
    import io

    path = data_dir / f"{split}_0"
    data_dir.mkdir(parents=True, exist_ok=True)
    with RecordWriter(path) as writer:
        for i in indices:
            objects = scene(i, size)
            buffer = io.BytesIO()
            draw(objects, size, seed=i).save(buffer, format="JPEG")
            writer.write(buffer.getvalue())
            writer.write(json.dumps(annotation(objects, size, GT_IDS)).encode())
            if metadata:
                writer.write(json.dumps({"class-map": GT_CLASS_MAP}).encode())
    return path


def voc_channel(root: Path, split: str, indices, size: int = 64, names=("red", "green")) -> Path:
    """A Pascal VOC folder: Annotations/*.xml and JPEGImages/*.jpg."""
    folder = root / split
    (folder / "Annotations").mkdir(parents=True, exist_ok=True)
    for i in indices:
        objects = scene(i, size)
        save(draw(objects, size, seed=i), folder / "JPEGImages" / f"{i:06d}.jpg")
        parts = [f"<annotation><filename>{i:06d}.jpg</filename><size><width>{size}</width><height>{size}</height>"
                 f"<depth>3</depth></size>"]
        for k, (c, l, t, w, h) in enumerate(objects):
            parts.append(f"<object><name>{names[c]}</name><difficult>{int(k == 1)}</difficult><bndbox>"
                         f"<xmin>{l + 1}</xmin><ymin>{t + 1}</ymin><xmax>{l + w}</xmax><ymax>{t + h}</ymax>"
                         f"</bndbox></object>")
        (folder / "Annotations" / f"{i:06d}.xml").write_text("".join(parts) + "</annotation>")
    return folder


def rec_channel(root: Path, split: str, indices, size: int = 64, labels: Optional[dict] = None) -> Path:
    """A RecordIO channel with packed normalised labels (labels[i] overrides the packed array of image i)."""
    import io

    folder = root / split
    folder.mkdir(parents=True, exist_ok=True)
    with RecordWriter(folder / f"{split}.rec", folder / f"{split}.idx") as writer:
        for n, i in enumerate(indices):
            objects = scene(i, size)
            packed = [2, 5]
            for c, l, t, w, h in objects:
                packed += [c, l / size, t / size, (l + w) / size, (t + h) / size]
            if not objects:
                packed += [-1] * 5
            if labels and i in labels:
                packed = labels[i]
            buffer = io.BytesIO()
            draw(objects, size, seed=i).save(buffer, format="JPEG", quality=95)
            writer.write(pack(IRHeader(0, np.asarray(packed, np.float32), n, 0), buffer.getvalue()), key=n)
    return folder


def boxes_of(i: int, size: int = 64) -> np.ndarray:
    """Normalised XYXY boxes of scene(i)."""
    return np.asarray([[l / size, t / size, (l + w) / size, (t + h) / size] for _, l, t, w, h in scene(i, size)],
                      np.float32).reshape(-1, 4)
