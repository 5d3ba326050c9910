"""`smcv convert-detection`: Ground Truth manifests, Pascal VOC or images + JSON to MXNet RecordIO (.rec/.idx/.lst).

Labels are packed as im2rec --pack-label does for the built-in: [2, 5, class, xmin, ymin, xmax, ymax, ...] with
corners as fractions of the image width/height and 0-based contiguous class ids shared by every input of one call.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from smcv.data.im2rec import resize_shorter_side
from smcv.data.images import decode_image, encode_image
from smcv.data.lst import LstEntry, write_lst
from smcv.data.recordio import IRHeader, RecordWriter, pack
from smcv.detection.annotations import read_json_annotations, read_manifest_channel, read_voc
from smcv.detection.labels import Objects, clean_boxes, pack_label, parse_class_names
from smcv.detection.params import parse_attribute_names
from smcv.detection.prepare import resolve_labels
from smcv.detection.samples import ChannelData, Sample
from smcv.errors import DataError, UserError

FORMATS = ("auto", "manifest", "voc", "json")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the convert-detection subcommand."""
    p = subparsers.add_parser(
        "convert-detection", help="convert detection labels (Ground Truth, VOC, JSON) to MXNet RecordIO",
        description="Write PREFIX.rec, PREFIX.idx, PREFIX.lst and PREFIX.classes.txt for each --input, readable "
                    "by MXNet and by the SageMaker object-detection built-in. Give train and validation in one "
                    "call (--input/--output pairs) so they share one class numbering.")
    p.add_argument("--input", action="append", required=True, type=Path,
                   help="a .manifest/.jsonl file, a Pascal VOC folder (Annotations/, JPEGImages/) or a folder of "
                        "per-image JSON files; repeat for several splits")
    p.add_argument("--output", action="append", required=True, help="output prefix for each --input, in order")
    p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: sniffed)")
    p.add_argument("--images", action="append", type=Path, default=[],
                   help="folder to find images in (manifest source-refs, JSON 'file' names); repeatable")
    p.add_argument("--classes", help="class names in id order: comma-separated, or a file with one name per line")
    p.add_argument("--attribute-names", help="manifest attributes, e.g. 'source-ref,bounding-box'")
    p.add_argument("--resize", type=int, default=0, help="resize the shorter side to this many pixels (0: keep)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality when re-encoding")
    p.add_argument("--encoding", choices=(".jpg", ".png"), default=".jpg", help="image encoding when re-encoding")
    p.add_argument("--pass-through", action="store_true", help="store the original image bytes unchanged")
    p.add_argument("--keep-empty", action="store_true",
                   help="keep images without boxes (stored with one -1 padding object; MXNet's own iterator rejects them)")
    p.set_defaults(func=run)


def _sniff(path: Path) -> str:
    if path.is_file():
        return "manifest"
    if any(p.parent.name == "Annotations" for p in path.rglob("*.xml")):
        return "voc"
    if any(path.rglob("*.json")):
        return "json"
    raise UserError(f"cannot tell the format of {path}: expected a manifest file, a Pascal VOC folder or a folder "
                    f"of JSON files; pass --format")


def read_input(path: Path, fmt: str, images: Sequence[Path], attribute_names: Optional[list[str]]) -> ChannelData:
    """Samples from one converter input."""
    fmt = _sniff(path) if fmt == "auto" else fmt
    if not path.exists():
        raise UserError(f"{path} does not exist")
    if fmt == "manifest":
        return read_manifest_channel(path.stem, [path], [path.parent, *images], attribute_names)
    if fmt == "voc":
        return read_voc(path.name, path)
    return read_json_annotations(path.name, images[0] if images else path, path)


def _class_names(value: Optional[str]) -> Optional[list[str]]:
    if value and Path(value).is_file():
        return [line.strip() for line in Path(value).read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    return parse_class_names(value)


def _num_classes(parts: Sequence[ChannelData], classes: Optional[list[str]]) -> int:
    if classes:
        return len(classes)
    if parts[0].label_kind == "name":
        return len({str(n) for p in parts for s in p.samples for n in s.objects.labels})
    ids = {int(i) for p in parts for s in p.samples for i in s.objects.labels} | {k for p in parts for k in p.names}
    return max(len(ids), 1)


def _load(sample: Sample, args: argparse.Namespace) -> tuple[bytes, int, int]:
    """(bytes to store, original width, original height); boxes as fractions do not change with resizing."""
    data = sample.image.read()
    image = decode_image(data, sample.source, "RGB")
    width, height = image.width, image.height
    if args.pass_through:
        return data, width, height
    if args.resize:
        image = resize_shorter_side(image, args.resize)
    return encode_image(image, args.encoding, args.quality), width, height


def write_split(part: ChannelData, labels: list[np.ndarray], prefix: str, args: argparse.Namespace) -> dict:
    """Write PREFIX.rec/.idx/.lst for one input; return counts."""
    paths = [Path(getattr(s.image, "path", s.source)) for s in part.samples]
    root = Path(os.path.commonpath([str(p.parent) for p in paths])) if paths else Path(".")
    entries, counts = [], {"images": 0, "boxes": 0, "skipped_empty": 0, "dropped_boxes": part.dropped_boxes}
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    with RecordWriter(prefix + ".rec", prefix + ".idx") as writer:
        for sample, label, path in zip(part.samples, labels, paths):
            data, width, height = _load(sample, args)
            boxes = np.asarray(sample.objects.boxes, np.float32).reshape(-1, 4)
            if not sample.normalized:  # pixels -> fractions of the image size
                boxes = boxes / np.asarray([width, height, width, height], np.float32)
            objects, dropped = clean_boxes(Objects(boxes, label, sample.objects.difficult), 1.0, 1.0)
            counts["dropped_boxes"] += dropped
            if not len(objects.labels) and not args.keep_empty:
                counts["skipped_empty"] += 1
                continue
            packed = pack_label(objects.boxes, objects.labels, keep_empty=True)
            index = counts["images"]
            writer.write(pack(IRHeader(0, packed, index, 0), data), key=index)
            entries.append(LstEntry(index, tuple(float(v) for v in packed), os.path.relpath(path, root)))
            counts["images"] += 1
            counts["boxes"] += len(objects.labels)
    write_lst(prefix + ".lst", entries)
    return counts


def convert(args: argparse.Namespace) -> list[dict]:
    """Read every input, agree on class ids, write one RecordIO set per input."""
    if len(args.input) != len(args.output):
        raise UserError(f"give one --output per --input ({len(args.input)} inputs, {len(args.output)} outputs)")
    if args.pass_through and args.resize:
        raise UserError("--pass-through stores images unchanged; it cannot be combined with --resize")
    attribute_names = parse_attribute_names(args.attribute_names)
    parts = [read_input(path, args.format, args.images, attribute_names) for path in args.input]
    classes = _class_names(args.classes)
    labels, names, _ = resolve_labels(parts, _num_classes(parts, classes), classes)
    results = []
    for part, part_labels, prefix in zip(parts, labels, args.output):
        counts = write_split(part, part_labels, prefix, args)
        Path(prefix + ".classes.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
        results.append({"output": prefix, **counts})
    return results


def run(args: argparse.Namespace) -> int:
    """CLI entry: convert and print a summary; user errors print one line and return 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        results = convert(args)
    except (UserError, DataError) as exc:
        print(f"convert-detection: {exc}")
        return 2
    for r in results:
        print(f"{r['output']}.rec: {r['images']} images, {r['boxes']} boxes; {r['skipped_empty']} images without "
              f"boxes skipped (--keep-empty keeps them), {r['dropped_boxes']} degenerate boxes dropped")
    return 0
