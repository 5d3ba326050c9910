#!/usr/bin/env python3
"""Make the demo's learnable sample for one task as a fake /opt/ml (standard library only).

Usage: python3 local_test/make_task_sample.py {classification|detection|segmentation} OUT_DIR

Sizes, counts, seeds and hyperparameters come from local_test/demo.json (the one place the demo, its test and
this generator share). Every sample is drawn from fixed seeds, so the same files come out on every machine:
- classification: class folders `blobs` (two to four round spots) and `stripes` (bands of random period and
  direction), both in random colours on a noisy background, so the network must learn shape, not colour.
- detection: a Ground Truth augmented manifest in `train` and `validation`, one to three red circles and blue
  squares per image (Ground Truth class ids 0 and 5 with a class-map, to show the renumbering to 0 and 1).
- segmentation: the built-in layout (`train`, `validation`, `*_annotation`) with colour masks of bright cells,
  and a `label_map` channel whose internal-color-map names the classes `background` and `cell`.
Each writes OUT_DIR/input/config/*.json and OUT_DIR/payload.png, a held-out image for predict.sh.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEMO_CONFIG = HERE / "demo.json"
TASKS = ("classification", "detection", "segmentation")
DETECTION_CLASSES = {0: ("circle", (220, 40, 40)), 5: ("square", (40, 60, 220))}
CELL_RGB = (255, 0, 0)


def demo_config(task: str) -> dict:
    """The task's entry of local_test/demo.json: sample, hyperparameters, metric and floor."""
    return json.loads(DEMO_CONFIG.read_text())[task]


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


def clamp(value: float) -> int:
    return max(0, min(255, int(value)))


def noisy_grey(rng: random.Random, base: int, spread: int = 20):
    """A pixel function returning grey noise around base."""
    def pixel(_x: int, _y: int) -> tuple[int, int, int]:
        v = clamp(base + rng.randrange(-spread, spread + 1))
        return (v, v, v)
    return pixel


def two_colours(rng: random.Random) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """A random background and a random, clearly different foreground colour."""
    while True:
        bg = tuple(rng.randrange(0, 256) for _ in range(3))
        fg = tuple(rng.randrange(0, 256) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(bg, fg)) > 200:
            return bg, fg


def classification_image(cls: str, size: int, rng: random.Random) -> bytes:
    """Blobs (2-4 discs) or stripes (bands of period 6-10 px, horizontal, vertical or diagonal)."""
    bg, fg = two_colours(rng)
    if cls == "blobs":
        discs = [(rng.uniform(4, size - 4), rng.uniform(4, size - 4), rng.uniform(2.5, size / 7)) for _ in range(rng.randint(2, 4))]
        inside = lambda x, y: any((x - cx) ** 2 + (y - cy) ** 2 <= r * r for cx, cy, r in discs)  # noqa: E731
    else:
        period, phase = rng.randint(6, 10), rng.uniform(0, 10)
        dx, dy = rng.choice(((1, 0), (0, 1), (1, 1), (1, -1)))
        inside = lambda x, y: ((x * dx + y * dy + phase) % period) < period / 2  # noqa: E731
    return png(size, size, lambda x, y: tuple(clamp(c + rng.randrange(-15, 16)) for c in (fg if inside(x, y) else bg)))


def make_classification(out: Path, spec: dict, rng: random.Random) -> None:
    for split, count in (("train", spec["train_per_class"]), ("validation", spec["validation_per_class"])):
        for cls in ("blobs", "stripes"):
            folder = out / "input" / "data" / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                (folder / f"{cls}_{i:03d}.png").write_bytes(classification_image(cls, spec["size"], rng))
    (out / "payload.png").write_bytes(classification_image("stripes", spec["size"], rng))


def detection_image(rng: random.Random, size: int) -> tuple[bytes, list[dict]]:
    """One to three non-overlapping objects: red circles (class id 0) and blue squares (class id 5)."""
    boxes: list[dict] = []
    for _ in range(rng.randint(1, 3)):
        side = rng.randrange(size // 5, size // 2)
        left, top = rng.randrange(0, size - side), rng.randrange(0, size - side)
        if all(left + side <= b["left"] or b["left"] + b["width"] <= left or top + side <= b["top"]
               or b["top"] + b["height"] <= top for b in boxes):
            boxes.append({"class_id": rng.choice(list(DETECTION_CLASSES)), "left": left, "top": top,
                          "width": side, "height": side})
    bg = noisy_grey(rng, 120)

    def pixel(x: int, y: int):
        for b in boxes:
            r = b["width"] / 2
            cx, cy = b["left"] + r, b["top"] + r
            if b["left"] <= x < b["left"] + b["width"] and b["top"] <= y < b["top"] + b["height"]:
                if b["class_id"] != 0 or (x + 0.5 - cx) ** 2 + (y + 0.5 - cy) ** 2 <= r * r:
                    return DETECTION_CLASSES[b["class_id"]][1]
        return bg(x, y)

    return png(size, size, pixel), boxes


def make_detection(out: Path, spec: dict, rng: random.Random) -> None:
    size = spec["size"]
    class_map = {str(k): name for k, (name, _) in DETECTION_CLASSES.items()}
    for split in ("train", "validation"):
        folder = out / "input" / "data" / split
        (folder / "images").mkdir(parents=True, exist_ok=True)
        lines = []
        for i in range(spec[split]):
            data, boxes = detection_image(rng, size)
            (folder / "images" / f"{split}_{i:03d}.png").write_bytes(data)
            lines.append(json.dumps({
                "source-ref": f"s3://example-bucket/images/{split}_{i:03d}.png",
                "cells": {"image_size": [{"width": size, "height": size, "depth": 3}], "annotations": boxes},
                "cells-metadata": {"class-map": class_map, "type": "groundtruth/object-detection",
                                   "human-annotated": "yes"}}))
        (folder / "output.manifest").write_text("\n".join(lines) + "\n")
    payload, boxes = detection_image(rng, size)
    while len({b["class_id"] for b in boxes}) < 2:  # a payload that shows both classes
        payload, boxes = detection_image(rng, size)
    (out / "payload.png").write_bytes(payload)


def cells(rng: random.Random, size: int):
    """A function (x, y) -> inside one of 1-3 ellipses."""
    shapes = [(rng.uniform(10, size - 10), rng.uniform(10, size - 10), rng.uniform(5, size / 6), rng.uniform(5, size / 6))
              for _ in range(rng.randint(1, 3))]
    return lambda x, y: any(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1 for cx, cy, a, b in shapes)


def make_segmentation(out: Path, spec: dict, rng: random.Random) -> None:
    size = spec["size"]
    data = out / "input" / "data"
    for split in ("train", "validation"):
        for i in range(spec[split]):
            inside = cells(rng, size)
            level = rng.randrange(150, 230)
            bg = noisy_grey(rng, rng.randrange(30, 90), 30)
            image = png(size, size, lambda x, y: (clamp(level + rng.randrange(-30, 31)),) * 3 if inside(x, y) else bg(x, y))
            mask = png(size, size, lambda x, y: CELL_RGB if inside(x, y) else (0, 0, 0))
            for channel, body in ((split, image), (f"{split}_annotation", mask)):
                (data / channel).mkdir(parents=True, exist_ok=True)
                (data / channel / f"{split}_{i:03d}.png").write_bytes(body)
    (data / "label_map").mkdir(parents=True, exist_ok=True)
    (data / "label_map" / "train_label_map.json").write_text(json.dumps({"internal-color-map": {
        "0": {"class-name": "background", "hex-color": "#000000"},
        "1": {"class-name": "cell", "hex-color": "#%02x%02x%02x" % CELL_RGB}}}, indent=2) + "\n")
    inside = cells(rng, size)
    bg = noisy_grey(rng, 60, 30)
    (out / "payload.png").write_bytes(png(size, size, lambda x, y: (200, 200, 200) if inside(x, y) else bg(x, y)))


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


def make_sample(task: str, out: Path) -> None:
    """Write the task's demo sample, config and payload under out (a fake /opt/ml)."""
    config = demo_config(task)
    if (out / "input").exists():
        shutil.rmtree(out / "input")
    makers = {"classification": make_classification, "detection": make_detection, "segmentation": make_segmentation}
    makers[task](out, config["sample"], random.Random(config["sample"]["seed"]))
    content_type = {"classification": "application/x-image", "detection": "application/x-image",
                    "segmentation": "image/png"}[task]
    write_config(out, config["hyperparameters"], content_type)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in TASKS:
        print(__doc__)
        return 2
    out = Path(argv[1])
    make_sample(argv[0], out)
    print(f"wrote the {argv[0]} demo sample under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
