"""Ground Truth augmented manifests for classification: File-mode lines, Pipe-mode records, labels and class names."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from smcv.classification.samples import FileItem
from smcv.contract import CHANNEL_ATTRIBUTE_NAMES, CHANNEL_CONTENT_TYPE, CHANNEL_RECORD_WRAPPER
from smcv.data.images import sniff_image_type
from smcv.data.manifest import parse_attribute_names, read_numbered_manifest, resolve_ref
from smcv.data.recordio import IndexedRecordReader, index_beside
from smcv.errors import ConfigError, DataError

MANIFEST_SUFFIXES = (".manifest", ".jsonl")
LABEL_FORMATS = ("multi-hot", "class-id")
METADATA_SUFFIX = "-metadata"
PIPE_ATTRIBUTES = ("source-ref", "class")  # the built-in's order: the image, then the label
ATTRIBUTES_HINT = ("set the attribute_names hyperparameter to the image attribute, then the label attribute, "
                   "e.g. '[\"source-ref\", \"class\"]'")
CLASS_ID_HINT = ("set label-format=class-id in the channel's ContentType "
                 "('application/x-recordio; label-format=class-id')")


@dataclass(frozen=True)
class LabelRules:
    """How one channel's manifest labels are read: hyperparameters, the channel's ContentType and AttributeNames."""

    num_classes: int
    multi_label: bool
    label_format: Optional[str] = None  # None: multi-hot, the built-in's default, with a hint when a list cannot be
    attribute_names: Optional[list[str]] = None


def label_format_of(content_type: Any) -> Optional[str]:
    """The `label-format` parameter of a ContentType such as 'application/x-recordio; label-format=class-id'."""
    for part in str(content_type or "").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "label-format":
            fmt = value.strip().strip('"').lower()
            if fmt not in LABEL_FORMATS:
                raise ConfigError(f"ContentType {content_type!r}: label-format {value.strip()!r} is not one of "
                                  f"{', '.join(LABEL_FORMATS)}")
            return fmt
    return None


def label_rules(num_classes: int, multi_label: bool, attribute_names: Any, channel_config: dict) -> LabelRules:
    """One channel's rules; the attribute_names hyperparameter wins over the channel's AttributeNames."""
    names = parse_attribute_names(attribute_names) or parse_attribute_names(channel_config.get(CHANNEL_ATTRIBUTE_NAMES))
    return LabelRules(num_classes, multi_label, label_format_of(channel_config.get(CHANNEL_CONTENT_TYPE)), names)


def declares_manifest(channel_config: dict, pipe: bool = False) -> bool:
    """Whether inputdataconfig.json marks the channel as an augmented manifest (AttributeNames; in Pipe mode also
    RecordWrapperType RecordIO)."""
    if channel_config.get(CHANNEL_ATTRIBUTE_NAMES):
        return True
    return pipe and str(channel_config.get(CHANNEL_RECORD_WRAPPER, "")).strip().lower() == "recordio"


# ---- label values -----------------------------------------------------------------------------------------------

def _number(value: Any, label: Any, where: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{where}: label {json.dumps(label)} is not a class id or a list of class ids (or of 0/1)")
    return float(value)


def _numbers(label: Any, where: str) -> tuple[list[float], bool]:
    """The label's numbers, and whether it was a list ("[0, 2]" strings are lists too)."""
    value = label
    if isinstance(value, str) and value.strip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise DataError(f"{where}: label {label!r} is not a JSON list of numbers") from None
    if isinstance(value, list):
        return [_number(v, label, where) for v in value], True
    return [_number(value, label, where)], False


def _class_id(value: float, num_classes: int, where: str) -> int:
    if value != int(value) or not 0 <= value < num_classes:
        raise DataError(f"{where}: label {value:g} is not a class id in 0..{num_classes - 1} "
                        f"(num_classes={num_classes}); fix the label or raise num_classes")
    return int(value)


def parse_label(label: Any, rules: LabelRules, where: str) -> tuple[float, ...]:
    """A manifest label as (class id,), or with multi_label as a multi-hot vector of num_classes values."""
    values, is_list = _numbers(label, where)
    n = rules.num_classes
    if not rules.multi_label:
        if len(values) != 1:
            raise DataError(f"{where}: label {json.dumps(label)} holds {len(values)} values; give one class id per "
                            f"image, or set multi_label=1 for several labels per image")
        return (float(_class_id(values[0], n, where)),)
    if rules.label_format == "class-id" or not is_list:
        hot = [0.0] * n
        for value in values:
            hot[_class_id(value, n, where)] = 1.0
        return tuple(hot)
    if len(values) != n:
        raise DataError(f"{where}: label {json.dumps(label)} has {len(values)} values, but a multi-hot label (the "
                        f"default label-format) needs num_classes={n}; if it lists class ids (as Ground Truth "
                        f"writes them), {CLASS_ID_HINT}")
    if any(v not in (0.0, 1.0) for v in values):
        raise DataError(f"{where}: multi-hot label {json.dumps(label)} holds values other than 0 and 1; if it lists "
                        f"class ids, {CLASS_ID_HINT}")
    return tuple(values)


# ---- class names ------------------------------------------------------------------------------------------------

def names_from_metadata(metadata: Any, labels: tuple[float, ...], multi_label: bool) -> dict[int, str]:
    """Class names from a '<label>-metadata' object: its class-map, and class-name for a single-label line."""
    if not isinstance(metadata, dict):
        return {}
    names: dict[int, str] = {}
    class_map = metadata.get("class-map")
    if isinstance(class_map, dict):
        names.update({int(k): str(v) for k, v in class_map.items() if str(k).strip().isdigit() and str(v)})
    name = metadata.get("class-name")
    if isinstance(name, str) and name.strip() and not multi_label:
        names[int(labels[0])] = name.strip()
    return names


def merge_names(into: dict[int, str], found: dict[int, str], where: str) -> None:
    """Add class names; one id with two names raises DataError (e.g. manifests of two labelling jobs mixed)."""
    for class_id, name in found.items():
        known = into.setdefault(class_id, name)
        if known != name:
            raise DataError(f"{where}: class {class_id} is named {name!r} here but {known!r} before; every class id "
                            f"needs one name across the manifests (were manifests of different labelling jobs mixed?)")


# ---- File mode: manifest lines ----------------------------------------------------------------------------------

def _is_classification_metadata(metadata: Any) -> bool:
    return isinstance(metadata, dict) and str(metadata.get("type", "")).startswith("groundtruth/image-classification")


def _attributes(obj: dict, rules: LabelRules) -> tuple[Optional[str], Optional[str]]:
    """The image and label attribute of a line: attribute_names, else source-ref (or *-ref) and class (or the one
    attribute whose metadata says groundtruth/image-classification, or the only other attribute)."""
    if rules.attribute_names:
        names = rules.attribute_names
        return names[0], next((n for n in names[1:] if not n.endswith(METADATA_SUFFIX)), None)
    image = "source-ref" if "source-ref" in obj else next((k for k in obj if k.endswith("-ref")), None)
    if "class" in obj:
        return image, "class"
    typed = [k for k in obj if _is_classification_metadata(obj.get(k + METADATA_SUFFIX))]
    others = [k for k in obj if k != image and not k.endswith(METADATA_SUFFIX)]
    candidates = typed if len(typed) == 1 else others
    return image, candidates[0] if len(candidates) == 1 else None


def _line_item(obj: dict, where: str, search_dirs: Sequence[Path],
               rules: LabelRules) -> tuple[FileItem, dict[int, str]]:
    image, label = _attributes(obj, rules)
    keys = ", ".join(sorted(obj)) or "none"
    if image is None or image not in obj:
        raise DataError(f"{where}: no image attribute {image or 'source-ref'!r} (keys: {keys}); {ATTRIBUTES_HINT}")
    if label is None or label not in obj:
        named = f" {label!r}" if label else ""
        failed = [v["failure-reason"] for v in obj.values() if isinstance(v, dict) and v.get("failure-reason")]
        fix = f"labelling failed ({failed[0]}): remove the line" if failed else ATTRIBUTES_HINT
        raise DataError(f"{where}: no label attribute{named} (keys: {keys}); {fix}")
    labels = parse_label(obj[label], rules, where)
    try:
        path = resolve_ref(obj[image], search_dirs)
    except DataError as exc:
        raise DataError(f"{where}: {exc.args[0]}") from None
    names = names_from_metadata(obj.get(label + METADATA_SUFFIX), labels, rules.multi_label)
    return FileItem(path, labels, where), names


def manifest_items(manifests: Sequence[Path], search_dirs: Sequence[Path],
                   rules: LabelRules) -> tuple[list[FileItem], dict[int, str]]:
    """Images (s3:// references resolved to local files, or relative paths) and labels of File-mode manifests."""
    items: list[FileItem] = []
    names: dict[int, str] = {}
    for manifest in manifests:
        dirs = list(dict.fromkeys([manifest.parent, *search_dirs]))
        for lineno, obj in read_numbered_manifest(manifest):
            item, found = _line_item(obj, f"{manifest}, line {lineno}", dirs, rules)
            items.append(item)
            merge_names(names, found, item.origin)
    return items, names


# ---- Pipe mode: spooled records ---------------------------------------------------------------------------------

def pipe_holds_manifest(rec: Path, channel_config: dict) -> bool:
    """Whether a spooled Pipe channel is an augmented manifest: declared so, or its first record is a bare image."""
    if declares_manifest(channel_config, pipe=True):
        return True
    with IndexedRecordReader(rec, index_beside(rec)) as reader:
        return len(reader) > 0 and sniff_image_type(reader.read_at(0)[:16]) is not None


def _pipe_layout(rules: LabelRules) -> tuple[list[str], int, Optional[int]]:
    names = list(rules.attribute_names or PIPE_ATTRIBUTES)
    label_at = next((i for i, n in enumerate(names) if i > 0 and not n.endswith(METADATA_SUFFIX)), None)
    if label_at is None:
        raise ConfigError(f"attribute_names {names} name no label attribute after the image; {ATTRIBUTES_HINT}")
    meta_at = next((i for i, n in enumerate(names) if n == names[label_at] + METADATA_SUFFIX), None)
    return names, label_at, meta_at


def _record_value(reader: IndexedRecordReader, index: int, where: str) -> Any:
    raw = reader.read_at(index)
    kind = sniff_image_type(raw[:16])
    if kind is not None:
        raise DataError(f"{where}: record {index} is an {kind} image where the label should be; AttributeNames must "
                        f"list the image attribute first, then the label, and attribute_names must match them")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise DataError(f"{where}: record {index} is neither an image nor a UTF-8 JSON label") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare value; parse_label says what it cannot read


def record_items(rec: Path, split: str, rules: LabelRules) -> tuple[list[FileItem], dict[int, str]]:
    """Pipe-mode augmented-manifest records spooled to a .rec: one record per attribute, in AttributeNames order."""
    names, label_at, meta_at = _pipe_layout(rules)
    group = len(names)
    items: list[FileItem] = []
    found: dict[int, str] = {}
    with IndexedRecordReader(rec, index_beside(rec)) as reader:
        if not len(reader) or len(reader) % group:
            raise DataError(f"the {split} channel delivered {len(reader)} Pipe records; an augmented manifest with "
                            f"AttributeNames {names} gives {group} per image (the image first, then the label); "
                            f"make attribute_names match the channel's AttributeNames")
        if sniff_image_type(reader.read_at(0)[:16]) is None:
            raise DataError(f"the {split} channel's first Pipe record is not an image; AttributeNames must list the "
                            f"image attribute first, then the label (e.g. [\"source-ref\", \"class\"])")
        for n in range(len(reader) // group):
            where = f"channel {split!r}, Pipe object {n + 1} (manifest line {n + 1})"
            labels = parse_label(_record_value(reader, n * group + label_at, where), rules, where)
            items.append(FileItem(rec, labels, where, record=n * group))
            if meta_at is not None:
                metadata = _record_value(reader, n * group + meta_at, where)
                merge_names(found, names_from_metadata(metadata, labels, rules.multi_label), where)
    return items, found
