#!/usr/bin/env python3
"""Make a tiny fake /opt/ml for the detection or segmentation image (standard library only).

Usage: python3 local_test/make_task_sample.py {detection|segmentation} OUT_DIR

detection: a Ground Truth augmented manifest (File mode) in the `train` and `validation` channels, images of
noisy backgrounds with one or two coloured squares (class 0 red, class 1 blue; Ground Truth class ids 0 and 5 to
show the class-map renumbering), and hyperparameters for a short SSD (vgg-16 at 300 px) run.
segmentation: the built-in layout (`train`, `validation`, `train_annotation`, `validation_annotation`) with
binary 0/255 PNG masks of a bright disc, and hyperparameters for a short UNet (resnet34) run at 64 px.
Both write OUT_DIR/payload.png, an image for predict.sh. Deterministic; nothing is downloaded.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import sys
import zlib
from pathlib import Path

COLOURS = {0: (220, 40, 40), 5: (40, 60, 220)}


def png(width: int, height: int, pixels, channels: int = 3) -> bytes:
    """An 8-bit RGB (channels=3) or grey (channels=1) PNG from a pixel function (x, y) -> tuple/int."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            value = pixels(x, y)
            row.extend(value if channels == 3 else (value,))
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2 if channels == 3 else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 6)) + chunk(b"IEND", b"")


def noisy(rng: random.Random, base: int):
    return lambda: max(0, min(255, base + rng.randrange(-20, 21)))


def detection_image(rng: random.Random, size: int) -> tuple[bytes, list[dict]]:
    boxes = []
    for _ in range(rng.randint(1, 2)):
        cls = rng.choice(list(COLOURS))
        side = rng.randrange(size // 4, size // 2)
        left, top = rng.randrange(0, size - side), rng.randrange(0, size - side)
        boxes.append({"class_id": cls, "left": left, "top": top, "width": side, "height": side})
    bg = noisy(rng, 120)

    def pixel(x: int, y: int):
        for b in reversed(boxes):
            if b["left"] <= x < b["left"] + b["width"] and b["top"] <= y < b["top"] + b["height"]:
                return COLOURS[b["class_id"]]
        v = bg()
        return (v, v, v)

    return png(size, size, pixel), boxes


def make_detection(out: Path, rng: random.Random) -> None:
    size = 96
    for split, count in (("train", 12), ("validation", 4)):
        folder = out / "input" / "data" / split
        lines = []
        for i in range(count):
            data, boxes = detection_image(rng, size)
            (folder / "images").mkdir(parents=True, exist_ok=True)
            (folder / "images" / f"{split}_{i:03d}.png").write_bytes(data)
            lines.append(json.dumps({
                "source-ref": f"s3://example-bucket/images/{split}_{i:03d}.png",
                "cells": {"image_size": [{"width": size, "height": size, "depth": 3}], "annotations": boxes},
                "cells-metadata": {"class-map": {"0": "red", "5": "blue"}, "type": "groundtruth/object-detection",
                                   "human-annotated": "yes"}}))
        (folder / "output.manifest").write_text("\n".join(lines) + "\n")
    write_config(out, {"num_classes": "2", "num_training_samples": "12", "base_network": "vgg-16",
                       "use_pretrained_model": "0", "image_shape": "300", "epochs": "2", "mini_batch_size": "4",
                       "learning_rate": "0.001", "optimizer": "adam"}, "application/x-image")
    (out / "payload.png").write_bytes(detection_image(rng, size)[0])


def make_segmentation(out: Path, rng: random.Random) -> None:
    size = 64
    for split, count in (("train", 12), ("validation", 4)):
        for i in range(count):
            cx, cy, r = rng.randrange(16, 48), rng.randrange(16, 48), rng.randrange(8, 16)
            inside = lambda x, y: (x - cx) ** 2 + (y - cy) ** 2 <= r * r  # noqa: E731
            bg = noisy(rng, 60)
            image = png(size, size, lambda x, y: (200, 200, 200) if inside(x, y) else (bg(),) * 3)
            mask = png(size, size, lambda x, y: 255 if inside(x, y) else 0, channels=1)
            for channel, data in ((split, image), (f"{split}_annotation", mask)):
                folder = out / "input" / "data" / channel
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{split}_{i:03d}.png").write_bytes(data)
    write_config(out, {"num_classes": "2", "num_training_samples": "12", "use_pretrained_model": "False",
                       "image_size": "64", "epochs": "2", "mini_batch_size": "4", "learning_rate": "0.001",
                       "optimizer": "adam"}, "image/png")
    (out / "payload.png").write_bytes((out / "input" / "data" / "validation" / "validation_000.png").read_bytes())


def write_config(out: Path, hps: dict, content_type: str) -> None:
    config = out / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hps, indent=2) + "\n")
    channels = sorted(p.name for p in (out / "input" / "data").iterdir())
    (config / "inputdataconfig.json").write_text(json.dumps(
        {c: {"ContentType": content_type, "TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
             "RecordWrapperType": "None"} for c in channels}, indent=2) + "\n")
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0",
         "current_instance_type": "local"}, indent=2) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("detection", "segmentation"):
        print(__doc__)
        return 2
    out = Path(argv[1])
    if (out / "input").exists():
        shutil.rmtree(out / "input")
    rng = random.Random(0)
    (make_detection if argv[0] == "detection" else make_segmentation)(out, rng)
    print(f"wrote a {argv[0]} sample under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
