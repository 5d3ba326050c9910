"""Detection labels: MXNet packed labels, Ground Truth boxes, box cleaning and class-id mapping."""

from __future__ import annotations

import json
import logging
from typing import Any, Iterable, NamedTuple, Optional

import numpy as np

from smcv.errors import ConfigError, DataError

log = logging.getLogger(__name__)

HEADER_WIDTH = 2  # [header width A, object width B]
OBJECT_WIDTH = 5  # [class, xmin, ymin, xmax, ymax]
MIN_PACKED_LENGTH = 7  # MXNet ImageDetIter: at least a 2-value header and one 5-value object
PAD_VALUE = -1.0
#: normalised coordinates above this are taken for pixels packed by mistake
MAX_NORMALISED = 1.5


class Objects(NamedTuple):
    """The objects of one image: boxes (n, 4) xmin ymin xmax ymax, class labels (n,), difficult flags (n,)."""

    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray

    @classmethod
    def empty(cls) -> "Objects":
        """No objects (a background-only image)."""
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.int64), np.zeros((0,), bool))


def parse_packed_label(raw: np.ndarray, source: str) -> Objects:
    """Objects from an MXNet packed detection label [A, B, cls, xmin, ymin, xmax, ymax, ...] (normalised corners).

    MXNet's rules: at least 7 values, header width A >= 2, object width B >= 5, (len - A) divisible by B.
    Rows with a negative class are padding (label_width filler) and skipped; a 6th column is read as 'difficult'.
    """
    label = np.asarray(raw, dtype=np.float64).ravel()
    hint = ("pack labels as [2, 5, class, xmin, ymin, xmax, ymax, ...] with coordinates as fractions of the "
            "image size (im2rec --pack-label, or smcv convert-detection)")
    if label.size < MIN_PACKED_LENGTH:
        raise DataError(f"{source}: the detection label has {label.size} values, fewer than the {MIN_PACKED_LENGTH} "
                        f"a 2-value header and one object need; {hint}")
    if not np.all(np.isfinite(label)):
        raise DataError(f"{source}: the detection label holds NaN or infinite values; {hint}")
    header, width = int(label[0]), int(label[1])
    if header < HEADER_WIDTH or header > label.size:
        raise DataError(f"{source}: the label header width {label[0]:g} must be >= 2 and fit in the label "
                        f"({label.size} values); {hint}")
    if width < OBJECT_WIDTH:
        raise DataError(f"{source}: the label object width {label[1]:g} must be >= 5; {hint}")
    if (label.size - header) % width != 0:
        raise DataError(f"{source}: the label has {label.size - header} object values after its {header}-value "
                        f"header, not a multiple of the object width {width}; {hint}")
    rows = label[header:].reshape(-1, width)
    rows = rows[rows[:, 0] >= 0]  # padding rows
    classes = rows[:, 0]
    if np.any(np.abs(classes - np.round(classes)) > 1e-3):
        raise DataError(f"{source}: class ids must be whole numbers, got {classes.tolist()}; {hint}")
    boxes = rows[:, 1:5]
    if boxes.size and boxes.max() > MAX_NORMALISED:
        raise DataError(f"{source}: box coordinates up to {boxes.max():g} look like pixels; {hint}")
    difficult = rows[:, 5] > 0 if width >= 6 else np.zeros(len(rows), bool)
    return Objects(boxes.astype(np.float32), np.round(classes).astype(np.int64), difficult.astype(bool))


def pack_label(boxes: np.ndarray, classes: Iterable[int], keep_empty: bool = True) -> np.ndarray:
    """The packed label [2, 5, cls, xmin, ymin, xmax, ymax, ...] for normalised boxes (im2rec --pack-label layout).

    An image without objects gets one padding row of -1 (MXNet's length rule needs 7 values) when keep_empty.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    classes = np.asarray(list(classes), dtype=np.float32).reshape(-1, 1)
    rows = np.concatenate([classes, boxes], axis=1)
    if not len(rows):
        if not keep_empty:
            raise ValueError("an image without objects has no packed label")
        rows = np.full((1, OBJECT_WIDTH), PAD_VALUE, np.float32)
    return np.concatenate([np.array([HEADER_WIDTH, OBJECT_WIDTH], np.float32), rows.ravel()])


def clean_boxes(objects: Objects, width: float, height: float) -> tuple[Objects, int]:
    """Clip boxes to [0, width] x [0, height] and drop those with no area left; return them and how many dropped."""
    boxes = objects.boxes.astype(np.float32).copy()
    if not len(boxes):
        return objects, 0
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    dropped = int(len(keep) - keep.sum())
    return Objects(boxes[keep], objects.labels[keep], objects.difficult[keep]), dropped


def _number(value: Any, field: str, source: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{source}: annotation field {field!r} must be a number, got {value!r}") from None
    if not np.isfinite(number):
        raise DataError(f"{source}: annotation field {field!r} is {value!r}; give a finite number")
    return number


def image_size_of(label: dict, source: str) -> Optional[tuple[float, float]]:
    """(width, height) from a Ground Truth style 'image_size' entry, or None when absent."""
    sizes = label.get("image_size")
    if isinstance(sizes, list) and sizes:
        sizes = sizes[0]
    if not isinstance(sizes, dict) or "width" not in sizes or "height" not in sizes:
        return None
    return _number(sizes["width"], "image_size.width", source), _number(sizes["height"], "image_size.height", source)


def objects_from_annotations(label: dict, source: str) -> Objects:
    """Pixel boxes from Ground Truth / built-in JSON 'annotations' [{class_id, left, top, width, height}, ...]."""
    if not isinstance(label, dict):
        raise DataError(f"{source}: a bounding-box label must be a JSON object with 'annotations', "
                        f"got {type(label).__name__}")
    annotations = label.get("annotations", [])
    if not isinstance(annotations, list):
        raise DataError(f"{source}: 'annotations' must be a list of {{class_id, left, top, width, height}}")
    boxes, classes = [], []
    for n, ann in enumerate(annotations):
        where = f"{source}, annotation {n}"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: expected an object with class_id, left, top, width, height")
        missing = [k for k in ("class_id", "left", "top", "width", "height") if k not in ann]
        if missing:
            raise DataError(f"{where}: missing {', '.join(missing)}; each annotation needs class_id, left, top, "
                            f"width and height in pixels")
        left, top = _number(ann["left"], "left", where), _number(ann["top"], "top", where)
        boxes.append([left, top, left + _number(ann["width"], "width", where), top + _number(ann["height"], "height", where)])
        class_id = _number(ann["class_id"], "class_id", where)
        if class_id != int(class_id) or class_id < 0:
            raise DataError(f"{where}: class_id must be a whole number >= 0, got {ann['class_id']!r}")
        classes.append(int(class_id))
    if not boxes:
        return Objects.empty()
    return Objects(np.asarray(boxes, np.float32), np.asarray(classes, np.int64), np.zeros(len(boxes), bool))


def parse_class_names(value: Optional[str]) -> Optional[list[str]]:
    """The `classes` hyperparameter: a JSON list or comma-separated names, in class-id order."""
    if value is None or not str(value).strip():
        return None

    text = str(value).strip()
    if text.startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"the 'classes' hyperparameter is not a valid JSON list ({exc}); "
                              f"give names as 'cat,dog' or '[\"cat\", \"dog\"]'") from None
    else:
        names = text.split(",")
    names = [str(n).strip() for n in names]
    if not all(names) or len(set(names)) != len(names):
        raise ConfigError(f"the 'classes' hyperparameter must list distinct, non-empty names, got {names}")
    return names


def map_class_ids(raw_ids: set[int], names: dict[int, str], num_classes: int) -> tuple[dict[int, int], list[str]]:
    """Raw class ids to model ids and the class names (length num_classes).

    Ids that all fit below num_classes are kept as they are (what the built-in does). Otherwise, when there are
    at most num_classes distinct ids (e.g. a Ground Truth class-map {0, 5}), they are renumbered 0..K-1 in order.
    """
    known = set(raw_ids) | set(names)
    if not known or max(known) < num_classes:
        mapping = {i: i for i in sorted(known)}
    elif len(known) <= num_classes:
        mapping = {raw: new for new, raw in enumerate(sorted(known))}
        log.info("class ids renumbered to be contiguous (raw -> model id): %s", mapping)
    else:
        raise ConfigError(f"the data uses {len(known)} distinct class ids ({_preview(sorted(known))}) but "
                          f"num_classes is {num_classes}; set num_classes to at least {len(known)}")
    class_names = [f"class_{i}" for i in range(num_classes)]
    for raw, new in mapping.items():
        if raw in names:
            class_names[new] = names[raw]
    return mapping, class_names


def map_class_names(found: set[str], explicit: Optional[list[str]], num_classes: int) -> tuple[dict[str, int], list[str]]:
    """Class names (Pascal VOC) to model ids: the explicit order when given, else sorted names."""
    order = list(explicit) if explicit else sorted(found)
    unknown = sorted(found - set(order))
    if unknown:
        raise ConfigError(f"the data has class names {_preview(unknown)} that are not in the 'classes' "
                          f"hyperparameter {order}; add them or remove those objects")
    if len(order) > num_classes:
        raise ConfigError(f"the data has {len(order)} classes ({_preview(order)}) but num_classes is "
                          f"{num_classes}; set num_classes to {len(order)}")
    names = order + [f"class_{i}" for i in range(len(order), num_classes)]
    return {name: i for i, name in enumerate(order)}, names


def _preview(items: list, limit: int = 10) -> str:
    shown = ", ".join(map(str, items[:limit]))
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")
