#!/usr/bin/env python3
"""Make a tiny, learnable image-classification sample as class folders of PNGs (standard library only).

Usage: python3 local_test/make_sample.py [--out DIR] [--train N] [--validation N] [--size PX] [--seed S]

Writes DIR/input/data/train/<class>/*.png and DIR/input/data/validation/<class>/*.png for two classes
("bright": light noisy images with a dark square, "dark": dark noisy images with a light square), updates
num_training_samples in DIR/input/config/hyperparameters.json when that file exists, and writes
local_test/payload.png (a validation-like image for predict.sh). DIR defaults to local_test/test_dir, which
local_test/train_local.sh mounts as /opt/ml. Deterministic for a given seed; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import struct
import sys
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLASSES = ("bright", "dark")


def png_bytes(width: int, height: int, rows: list[bytes]) -> bytes:
    """An 8-bit RGB PNG from raw rows of width*3 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rows)  # filter type 0 per row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def sample_image(cls: str, size: int, rng: random.Random) -> bytes:
    """One noisy image of the class: background level and an inverted square at a random place."""
    base, square = (200, 40) if cls == "bright" else (50, 215)
    side = max(2, size // 3)
    x0, y0 = rng.randrange(0, size - side + 1), rng.randrange(0, size - side + 1)
    tint = [rng.randrange(-20, 21) for _ in range(3)]
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            level = square if x0 <= x < x0 + side and y0 <= y < y0 + side else base
            for c in range(3):
                row.append(max(0, min(255, level + tint[c] + rng.randrange(-25, 26))))
        rows.append(bytes(row))
    return png_bytes(size, size, rows)


def write_split(folder: Path, per_class: int, size: int, rng: random.Random) -> int:
    if folder.exists():
        shutil.rmtree(folder)
    for cls in CLASSES:
        (folder / cls).mkdir(parents=True)
        for i in range(per_class):
            (folder / cls / f"{cls}_{i:03d}.png").write_bytes(sample_image(cls, size, rng))
    return per_class * len(CLASSES)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "test_dir", help="the fake /opt/ml (default: local_test/test_dir)")
    parser.add_argument("--train", type=int, default=16, help="training images per class (default 16)")
    parser.add_argument("--validation", type=int, default=4, help="validation images per class (default 4)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--payload", type=Path, default=HERE / "payload.png", help="sample request body for predict.sh")
    args = parser.parse_args(argv)
    if args.train < 1 or args.validation < 1 or args.size < 4:
        parser.error("--train and --validation must be >= 1 and --size >= 4")

    rng = random.Random(args.seed)
    data = args.out / "input" / "data"
    n_train = write_split(data / "train", args.train, args.size, rng)
    n_val = write_split(data / "validation", args.validation, args.size, rng)
    args.payload.parent.mkdir(parents=True, exist_ok=True)
    args.payload.write_bytes(sample_image("dark", args.size, rng))

    hp_file = args.out / "input" / "config" / "hyperparameters.json"
    if hp_file.exists():
        hps = json.loads(hp_file.read_text())
        if hps.get("num_training_samples") != str(n_train):
            hps["num_training_samples"] = str(n_train)
            hp_file.write_text(json.dumps(hps, indent=2) + "\n")
    print(f"wrote {n_train} training and {n_val} validation images ({args.size}x{args.size}, classes "
          f"{', '.join(CLASSES)}) under {data}, and {args.payload}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
