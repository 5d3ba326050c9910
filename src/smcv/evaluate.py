"""`smcv evaluate`: score a served (--url, --endpoint) or saved (--model-dir) model on a labelled folder.

Every image goes through the request/response path of `smcv predict` (one /invocations request each, streamed), so
the numbers are the served model's at each image's original size. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
from PIL import Image

from smcv.classification.sources import read_split
from smcv.detection.metrics import ImageResult
from smcv.detection.sources import read_channel
from smcv.errors import DataError, UserError
from smcv.evaluate_metrics import classification_scores, detection_scores, segmentation_scores
from smcv.local_predict import Transport, read_model
from smcv.predict_client import DEFAULT_ACCEPT, MASK_ACCEPT, REQUEST_TYPE, choose_transport, parse_response
from smcv.report.run import jsonable
from smcv.segmentation.datasets import sample_raw_masks
from smcv.segmentation.masks import MaskDecoder, decide_binary_255, raw_values
from smcv.segmentation.params import IGNORE_INDEX
from smcv.segmentation.sources import folder_pairs

TASKS = ("classification", "detection", "segmentation")
MAX_CLASS_ID = 256  # segmentation masks are 8-bit


def _limited(items: Iterable[Any], limit: Optional[int]) -> Iterable[Any]:
    return itertools.islice(items, limit) if limit else items


def evaluate_classification(data: Path, transport: Transport, names: list[str], limit: Optional[int]) -> dict[str, Any]:
    """Class folders (sorted names, matched to the model's class names when they are known), a .lst or a manifest."""
    split = read_split("validation", {"validation": data}, "auto")
    if not split.items:
        raise DataError(f"{data} holds RecordIO; smcv evaluate reads image files: class folders, a .lst or a manifest")
    probabilities, labels, threshold = [], [], None
    for item in _limited(split.items, limit):
        body, content_type = transport(item.path.read_bytes(), REQUEST_TYPE, DEFAULT_ACCEPT)
        answer = parse_response(body, content_type, names)
        folder_class = int(item.labels[0])
        name = split.class_names[folder_class] if folder_class < len(split.class_names) else None
        labels.append(answer.names.index(name) if name in answer.names else folder_class)
        probabilities.append(answer.probabilities)
        threshold = answer.threshold if answer.threshold is not None else threshold
    return classification_scores(np.array(probabilities), np.array(labels), threshold)


def evaluate_detection(data: Path, transport: Transport, names: list[str], limit: Optional[int]) -> dict[str, Any]:
    """Images with a Ground Truth manifest, VOC XML or JSON annotations (the detection channel readers)."""
    channel = read_channel("validation", {"validation": data}, {})
    images, seen = [], 0
    for sample in _limited(channel.samples, limit):
        encoded = sample.image.read()
        answer = parse_response(*transport(encoded, REQUEST_TYPE, DEFAULT_ACCEPT), names)
        names = names or answer.names
        gt = sample.objects
        scale = np.ones(4) if sample.normalized else np.tile(Image.open(io.BytesIO(encoded)).size, 2)
        dets = answer.detections
        images.append(ImageResult(np.array([d[2] for d in dets], np.float64).reshape(-1, 4),
                                  np.array([d[1] for d in dets]), np.array([d[0] for d in dets], np.int64),
                                  np.asarray(gt.boxes, np.float64) / scale, _detection_ids(gt.labels, channel.label_kind, names),
                                  np.asarray(gt.difficult, bool)))
        seen = max([seen, *images[-1].gt_labels + 1, *images[-1].det_labels + 1])
    return detection_scores(images, max(len(names), seen))


def _detection_ids(labels: np.ndarray, kind: str, names: list[str]) -> np.ndarray:
    if kind != "name":
        return np.asarray(labels, np.int64)
    unknown = sorted({str(n) for n in labels} - set(names))
    if unknown:
        raise DataError(f"object names {unknown} are not the model's classes {names}; give --model-dir for the names")
    return np.array([names.index(str(n)) for n in labels], np.int64)


def evaluate_segmentation(data: Path, transport: Transport, names: list[str], limit: Optional[int],
                          binary_mask_255: str = "auto") -> dict[str, Any]:
    """The built-in layout: <split>/ images and <split>_annotation/ PNG masks of class ids (255 ignored), or of 0 and
    255 for a two-class model, read as training reads them (binary_mask_255: auto, true, false)."""
    pairs = segmentation_pairs(data)
    classes = len(names) or 2  # without the model's names, auto reads 0/255-only masks as binary, as a 2-class job
    binary = decide_binary_255(binary_mask_255, classes, sample_raw_masks(pairs), has_map=False)
    binary_masks = MaskDecoder(2, binary_255=True) if binary else None
    counts = np.zeros(MAX_CLASS_ID * MAX_CLASS_ID, np.int64)
    for i in _limited(range(len(pairs)), limit):
        image, mask, image_name, mask_name = pairs.get(i)
        predicted = raw_values(transport(image, REQUEST_TYPE, MASK_ACCEPT)[0], f"the answer for {image_name}")
        truth = binary_masks.decode(mask, mask_name) if binary_masks else raw_values(mask, mask_name)
        if predicted.shape != truth.shape:
            raise DataError(f"{mask_name} is {truth.shape[1]}x{truth.shape[0]} but the model answered "
                            f"{predicted.shape[1]}x{predicted.shape[0]}; masks must have their image's size")
        valid = truth != IGNORE_INDEX
        counts += np.bincount(truth[valid].astype(np.int64) * MAX_CLASS_ID + predicted[valid], minlength=counts.size)
    matrix = counts.reshape(MAX_CLASS_ID, MAX_CLASS_ID)
    used = np.flatnonzero(matrix.sum(0) + matrix.sum(1))
    size = max(len(names), int(used.max()) + 1 if used.size else 0)
    return segmentation_scores(matrix[:size, :size])


def segmentation_pairs(data: Path):
    """The first of validation/, train/ or any <name>/ that has a <name>_annotation/ beside it."""
    candidates = ["validation", "train", *sorted(p.name for p in data.iterdir() if p.is_dir())] if data.is_dir() else []
    for name in candidates:
        if (data / name).is_dir() and (data / f"{name}_annotation").is_dir():
            return folder_pairs(data / name, data / f"{name}_annotation", name)
    raise DataError(f"{data} has no <split>/ + <split>_annotation/ folders (e.g. validation/ and validation_annotation/)")


EVALUATORS = {"classification": evaluate_classification, "detection": evaluate_detection,
              "segmentation": evaluate_segmentation}


def evaluate(task: str, data: Path, transport: Transport, names: list[str], limit: Optional[int] = None,
             binary_mask_255: str = "auto") -> dict[str, Any]:
    """The metrics of one task on a labelled folder, as a JSON-ready dict (binary_mask_255: segmentation only)."""
    if not Path(data).is_dir():
        raise DataError(f"{data} is not a folder; give the labelled data folder with --data")
    options = {"binary_mask_255": binary_mask_255} if task == "segmentation" else {}
    return jsonable({"task": task, **EVALUATORS[task](Path(data), transport, names, limit, **options)})


def register(subparsers: Any) -> None:
    """Add the `evaluate` subcommand (smcv.cli PLUGINS)."""
    parser = subparsers.add_parser("evaluate", help="score a model (--model-dir, --url, --endpoint) on labelled data")
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--data", required=True, help="labelled folder: IC class folders/.lst/manifest; OD images + "
                                                      "manifest/VOC XML; SS <split>/ + <split>_annotation/")
    parser.add_argument("--model-dir", help="model folder: in-process without --url/--endpoint, else the class names")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="a running server, e.g. http://127.0.0.1:8080")
    where.add_argument("--endpoint", help="a SageMaker endpoint name (boto3)")
    parser.add_argument("--region", help="AWS region of --endpoint")
    parser.add_argument("--limit", type=int, help="score only the first N images")
    parser.add_argument("--binary-mask-255", default="auto", choices=("auto", "true", "false"),
                        help="segmentation: 255 in the masks is class 1 (true), ignore (false), or as training "
                             "decides (auto: class 1 for a 2-class model whose masks hold only 0 and 255)")
    parser.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """`smcv evaluate`: the metrics as one JSON object on stdout; exit 2 with one line on stderr on a user error."""
    try:
        names = list(read_model(Path(args.model_dir))[0].get("class_names") or []) if args.model_dir else []
        transport = choose_transport(args.url, args.endpoint, args.region, args.model_dir)
        print(json.dumps(evaluate(args.task, Path(args.data), transport, names, args.limit, args.binary_mask_255),
                         sort_keys=True))
    except UserError as exc:
        print(f"smcv evaluate: {exc}", file=sys.stderr)
        return 2
    return 0
