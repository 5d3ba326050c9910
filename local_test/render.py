#!/usr/bin/env python3
"""Turn one demo task's verbose answer into lines a person reads and a picture a person opens (Pillow only).

Usage: python3 local_test/render.py {classification|detection|segmentation} DIR [--threshold T]

Reads DIR/payload.png (the request), DIR/prediction_verbose.json (the answer to Accept: application/json;verbose)
and DIR/model/manifest.json (the training result). Prints the answer (class and probability; boxes scoring at
least T with class names; each class's share of the mask) and the validation metric, and writes
DIR/prediction.png: the payload enlarged with its label (classification), its boxes drawn (detection) or its mask
overlaid (segmentation). Also writes DIR/metric.txt ("validation:accuracy=0.97") for the demo's summary table.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
#: pictures are enlarged (nearest neighbour) to at least this side so small samples are visible
MIN_SIDE = 256
#: outline and overlay colours per class id
COLOURS = [(255, 215, 0), (0, 200, 255), (255, 80, 200), (120, 255, 120), (255, 140, 0)]


def enlarged(image: Image.Image) -> tuple[Image.Image, float]:
    """The image scaled up by a whole factor to at least MIN_SIDE on its shorter side, and the factor."""
    factor = max(1, -(-MIN_SIDE // min(image.size)))
    return image.convert("RGB").resize((image.width * factor, image.height * factor), Image.NEAREST), factor


def caption(image: Image.Image, text: str) -> Image.Image:
    """The image with a black strip of text underneath."""
    out = Image.new("RGB", (image.width, image.height + 18), (0, 0, 0))
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((4, image.height + 3), text, fill=(255, 255, 255))
    return out


def classification(answer: dict, payload: Image.Image, _threshold: float) -> tuple[list[str], Image.Image]:
    best = answer["top_k"][0]
    lines = [f"predicted class: {answer['predicted_label']} (probability {best['probability']:.3f})"]
    lines += [f"  {t['label']:<12} {t['probability']:.3f}" for t in answer["top_k"]]
    picture, _ = enlarged(payload)
    return lines, caption(picture, f"{answer['predicted_label']} {best['probability']:.2f}")


def detection(answer: dict, payload: Image.Image, threshold: float) -> tuple[list[str], Image.Image]:
    kept = [d for d in answer["detections"] if d["score"] >= threshold]
    lines = [f"{len(kept)} box(es) scoring >= {threshold:g} (of {len(answer['detections'])} returned):"]
    picture, factor = enlarged(payload)
    draw = ImageDraw.Draw(picture)
    for d in kept:
        lines.append(f"  {d['label']:<8} score {d['score']:.3f}  left={d['left']} top={d['top']} "
                     f"width={d['width']} height={d['height']}")
        colour = COLOURS[d["class_id"] % len(COLOURS)]
        x0, y0 = d["left"] * factor, d["top"] * factor
        draw.rectangle([x0, y0, (d["left"] + d["width"]) * factor - 1, (d["top"] + d["height"]) * factor - 1],
                       outline=colour, width=3)
        text, ty = f"{d['label']} {d['score']:.2f}", y0 - 14 if y0 >= 14 else y0 + 3
        draw.rectangle(draw.textbbox((x0 + 3, ty), text), fill=colour)
        draw.text((x0 + 3, ty), text, fill=(0, 0, 0))
    return lines, picture


def segmentation(answer: dict, payload: Image.Image, _threshold: float) -> tuple[list[str], Image.Image]:
    shares = answer["class_share"]
    lines = ["share of the image per class:"] + [f"  {name:<12} {share:7.2%}" for name, share in shares.items()]
    indexed = Image.open(io.BytesIO(base64.b64decode(answer["mask_png_base64"])))
    mask = Image.frombytes("L", indexed.size, indexed.tobytes())  # the class ids, not the palette's colours
    colour = Image.new("RGB", payload.size, (0, 0, 0))
    for class_id in range(1, len(answer["labels"])):
        layer = Image.new("RGB", payload.size, COLOURS[class_id % len(COLOURS)])
        colour.paste(layer, (0, 0), mask.point(lambda v, c=class_id: 255 if v == c else 0))
    foreground = mask.point(lambda v: 140 if v > 0 else 0)
    overlaid = Image.composite(colour, payload.convert("RGB"), foreground)
    picture, _ = enlarged(overlaid)
    text = ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
    return lines, caption(picture, text)


RENDERERS = {"classification": classification, "detection": detection, "segmentation": segmentation}


def metric_line(task: str, manifest: dict) -> str:
    """'validation:accuracy=0.97' from the saved model's metrics and the demo's metric for the task."""
    name = json.loads((HERE / "demo.json").read_text())[task]["metric"]
    value = manifest.get("metrics", {}).get(name)
    return f"{name}={value:.3f}" if isinstance(value, (int, float)) else f"{name}=n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(RENDERERS))
    parser.add_argument("dir", type=Path)
    parser.add_argument("--threshold", type=float, default=0.5, help="detection: draw boxes scoring at least this")
    args = parser.parse_args(argv)
    answer = json.loads((args.dir / "prediction_verbose.json").read_text())
    payload = Image.open(args.dir / "payload.png")
    lines, picture = RENDERERS[args.task](answer, payload, args.threshold)
    picture.save(args.dir / "prediction.png")
    manifest = json.loads((args.dir / "model" / "manifest.json").read_text())
    metric = metric_line(args.task, manifest)
    (args.dir / "metric.txt").write_text(metric + "\n")
    print("\n".join(lines))
    print(f"picture: prediction.png; model: {metric} (best epoch {manifest.get('selected_epoch')} of "
          f"{manifest.get('epochs_completed')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
