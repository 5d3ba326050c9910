"""`smcv convert-classification`: class folders or a Ground Truth manifest to MXNet RecordIO (.lst/.rec/.idx), as
MXNet's im2rec makes them.

The list step follows im2rec's `--list --recursive`: every image under the root is labelled by its folder, folders
numbered in sorted walk order; the list is shuffled with im2rec's seed (100) unless --no-shuffle, then split into
train/val/test by ratio. The .lst files are written in im2rec's format (labels as %f) and packed with the shared
packing code (data/im2rec.py), which the MXNet test tier checks byte for byte against im2rec.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Sequence
from pathlib import Path

from smcv.classification.manifest import LabelRules, manifest_items
from smcv.data.im2rec import pack_lst
from smcv.data.lst import LstEntry, write_lst
from smcv.data.manifest import parse_attribute_names
from smcv.errors import DataError, UserError

#: im2rec's default --exts
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")
#: im2rec's shuffle seed
SHUFFLE_SEED = 100
#: class-id bound while reading a single-label manifest whose class count is not given (then inferred)
MAX_CLASSES = 1 << 20


def list_class_folders(root: Path, exts: Sequence[str] = IMAGE_EXTENSIONS) -> tuple[list[LstEntry], list[str]]:
    """Every image under root labelled by its folder (im2rec --list --recursive); also the folder names by id."""
    exts = tuple(e.lower() for e in exts)
    entries: list[LstEntry] = []
    folders: dict[str, int] = {}
    for path, dirs, files in os.walk(root, followlinks=True):
        dirs.sort()
        files.sort()
        for name in files:
            file_path = os.path.join(path, name)
            if os.path.splitext(name)[1].lower() in exts and os.path.isfile(file_path):
                label = folders.setdefault(path, len(folders))
                entries.append(LstEntry(len(entries), (float(label),), os.path.relpath(file_path, root)))
    return entries, [os.path.relpath(folder, root) for folder in folders]


def split_entries(entries: list[LstEntry], train_ratio: float, test_ratio: float,
                  shuffle: bool) -> dict[str, list[LstEntry]]:
    """Shuffle (im2rec's seed) and split into {suffix: entries}: '' for everything, or _train/_val/_test."""
    if not 0.0 < train_ratio <= 1.0 or not 0.0 <= test_ratio < 1.0 or train_ratio + test_ratio > 1.0:
        raise UserError(f"--train-ratio {train_ratio} and --test-ratio {test_ratio} must satisfy "
                        f"0 < train <= 1, 0 <= test < 1 and train + test <= 1")
    entries = list(entries)
    if shuffle:
        random.seed(SHUFFLE_SEED)
        random.shuffle(entries)
    if train_ratio == 1.0:
        return {"": entries}
    n_train, n_test = int(len(entries) * train_ratio), int(len(entries) * test_ratio)
    splits = {"_train": entries[n_test:n_test + n_train]}
    if train_ratio + test_ratio < 1.0:
        splits["_val"] = entries[n_test + n_train:]
    if test_ratio:
        splits["_test"] = entries[:n_test]
    return splits


def list_manifest(manifest: Path, image_dirs: Sequence[Path], num_classes: int | None, multi_label: bool,
                  label_format: str | None, attribute_names: str | None) -> tuple[list[LstEntry], list[str], Path]:
    """Every line of a Ground Truth manifest as a .lst entry (paths relative to the returned root); class names by id
    from the labelling job's metadata (the id itself where a class has no name)."""
    rules = LabelRules(num_classes or MAX_CLASSES, multi_label, label_format, parse_attribute_names(attribute_names))
    if multi_label and num_classes is None:
        raise UserError("--multi-label needs --num-classes (the length of a multi-hot label)")
    items, names = manifest_items([manifest], list(image_dirs), rules)
    if not items:
        raise DataError(f"{manifest} holds no lines")
    count = num_classes or int(max(item.labels[0] for item in items)) + 1
    root = Path(os.path.commonpath([str(item.path.parent) for item in items]))
    entries = [LstEntry(i, item.labels, os.path.relpath(item.path, root)) for i, item in enumerate(items)]
    return entries, [names.get(class_id, str(class_id)) for class_id in range(count)], root


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the convert-classification subcommand."""
    p = subparsers.add_parser(
        "convert-classification", help="convert class folders or a Ground Truth manifest to MXNet RecordIO (.lst/.rec/.idx)",
        description="Label every image under ROOT by its sub-folder (folders numbered in sorted order, as MXNet's "
                    "im2rec --list --recursive does), split by ratio, and write OUTPUT[_train|_val|_test].lst/.rec/"
                    ".idx plus OUTPUT.classes.txt (folder names in id order), readable by MXNet and by the "
                    "SageMaker image-classification built-in. With --manifest, a Ground Truth augmented manifest is listed "
                    "instead, in its line order, with class names from the labelling job's metadata.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", type=Path, help="folder with one sub-folder of images per class")
    source.add_argument("--manifest", type=Path, help="a Ground Truth augmented manifest (source-ref + class lines; "
                        "s3:// references are looked up under --image-dir)")
    p.add_argument("--image-dir", type=Path, action="append", default=[],
                   help="where the manifest's images are (repeatable; default: the manifest's folder)")
    p.add_argument("--num-classes", type=int, help="manifest: number of classes (default: the largest id + 1)")
    p.add_argument("--multi-label", action="store_true", help="manifest: several labels per image")
    p.add_argument("--label-format", choices=("multi-hot", "class-id"),
                   help="manifest with --multi-label: how list labels are written (default multi-hot, as the built-in)")
    p.add_argument("--attribute-names", help="manifest: image then label attribute, e.g. '[\"source-ref\", \"class\"]'")
    p.add_argument("--output", required=True, help="output prefix, e.g. data/xray")
    p.add_argument("--train-ratio", type=float, default=1.0, help="share of images in OUTPUT_train (1.0: one set)")
    p.add_argument("--test-ratio", type=float, default=0.0, help="share of images in OUTPUT_test")
    p.add_argument("--no-shuffle", dest="shuffle", action="store_false", help="keep the sorted order")
    p.add_argument("--exts", nargs="+", default=list(IMAGE_EXTENSIONS), help="image file extensions to list")
    p.add_argument("--resize", type=int, default=0, help="resize the shorter side to this many pixels (0: keep)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality when re-encoding")
    p.add_argument("--encoding", choices=(".jpg", ".png"), default=".jpg", help="image encoding when re-encoding")
    p.add_argument("--pass-through", action="store_true", help="store the original image bytes unchanged")
    p.set_defaults(func=run)


def convert(args: argparse.Namespace) -> dict:
    """List, split and pack; return a summary with the class names and the image count of each output."""
    if args.pass_through and args.resize:
        raise UserError("--pass-through stores images unchanged; it cannot be combined with --resize")
    if args.manifest is not None:
        if not args.manifest.is_file():
            raise UserError(f"--manifest {args.manifest} is not a file")
        entries, classes, root = list_manifest(args.manifest, args.image_dir, args.num_classes, args.multi_label,
                                               args.label_format, args.attribute_names)
    else:
        if not args.root.is_dir():
            raise UserError(f"--root {args.root} is not a folder")
        entries, classes = list_class_folders(args.root, args.exts)
        root = args.root
        if not entries:
            raise DataError(f"no images with extensions {' '.join(args.exts)} under {args.root}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    outputs = {}
    for suffix, part in split_entries(entries, args.train_ratio, args.test_ratio, args.shuffle).items():
        prefix = args.output + suffix
        write_lst(prefix + ".lst", part, label_format="%f")
        outputs[prefix] = pack_lst(part, root, prefix + ".rec", prefix + ".idx", encoding=args.encoding,
                                   quality=args.quality, resize=args.resize, pass_through=args.pass_through,
                                   pack_label=args.multi_label)
    Path(args.output + ".classes.txt").write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    return {"classes": classes, "outputs": outputs}


def run(args: argparse.Namespace) -> int:
    """CLI entry: convert and print the class map and counts; user errors print one line and return 2."""
    try:
        summary = convert(args)
    except UserError as exc:
        print(f"convert-classification: {exc}")
        return 2
    for class_id, name in enumerate(summary["classes"]):
        print(f"class {class_id}: {name}")
    for prefix, count in summary["outputs"].items():
        print(f"{prefix}.rec: {count} images")
    return 0
