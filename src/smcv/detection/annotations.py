"""File-based detection annotations: per-image JSON, Ground Truth manifests (File mode) and Pascal VOC XML."""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from smcv.data.images import IMAGE_EXTENSIONS
from smcv.data.manifest import read_numbered_manifest, resolve_ref
from smcv.detection.labels import Objects, clean_boxes, image_size_of, objects_from_annotations
from smcv.detection.samples import ChannelData, FileImage, Sample
from smcv.errors import DataError

log = logging.getLogger(__name__)
MANIFEST_SUFFIXES = (".manifest", ".jsonl")
METADATA_SUFFIX = "-metadata"


def files_with(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under folder (recursively) whose names end with one of the suffixes, sorted."""
    suffixes = tuple(s.lower() for s in suffixes)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name.lower().endswith(suffixes)
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _clean(objects: Objects, size: Optional[tuple[float, float]]) -> tuple[Objects, int]:
    width, height = size if size else (np.inf, np.inf)
    return clean_boxes(objects, width, height)


# ---- images + per-image JSON (the built-in's train / train_annotation channels) ----------------------------------

class _ImageIndex:
    """Images of a folder, findable by relative path, file name or stem."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_name: dict[str, list[Path]] = {}
        self.by_stem: dict[str, list[Path]] = {}
        for path in files_with(folder, IMAGE_EXTENSIONS):
            self.by_name.setdefault(path.name, []).append(path)
            self.by_stem.setdefault(path.stem, []).append(path)

    def find(self, file_field: Optional[str], stem: str, source: str) -> Path:
        if file_field:
            direct = self.folder / file_field
            if direct.is_file():
                return direct
            matches = self.by_name.get(Path(file_field.replace("\\", "/")).name, [])
        else:
            matches = []
        matches = matches or self.by_stem.get(stem, [])
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise DataError(f"{source}: no image for it in {self.folder} (looked for {file_field or stem + '.*'}); "
                            f"each JSON file needs an image with the same base name in the image channel")
        raise DataError(f"{source}: several images match it ({', '.join(str(m) for m in matches[:4])}); "
                        f"give the image path relative to the channel in the JSON 'file' field")


def read_json_annotations(channel: str, image_dir: Path, annotation_dir: Path) -> ChannelData:
    """Images in one channel, one JSON per image (same base name) in the annotation channel."""
    images = _ImageIndex(image_dir)
    data = ChannelData(channel, "json", [])
    json_files = [p for p in files_with(annotation_dir, (".json",))]
    if not json_files:
        raise DataError(f"no .json annotation files in {annotation_dir}; the {channel}_annotation channel holds one "
                        f"JSON file per image ({{'file', 'image_size', 'annotations', 'categories'}})")
    for path in json_files:
        try:
            label = json.loads(path.read_text(encoding="utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not valid JSON ({exc}); fix or remove the file") from None
        if not isinstance(label, dict):
            raise DataError(f"{path}: expected a JSON object with 'file' and 'annotations'")
        image = images.find(label.get("file"), path.stem, str(path))
        objects, dropped = _clean(objects_from_annotations(label, str(path)), image_size_of(label, str(path)))
        data.dropped_boxes += dropped
        data.samples.append(Sample(str(image), FileImage(str(image)), objects, normalized=False))
        for category in label.get("categories") or []:
            if isinstance(category, dict) and "class_id" in category and "name" in category:
                data.names[int(category["class_id"])] = str(category["name"])
    return data


# ---- Ground Truth augmented manifests (File mode) ------------------------------------------------------------------

def _label_attribute(obj: dict, attribute_names: Optional[Sequence[str]]) -> Optional[str]:
    if attribute_names and len(attribute_names) > 1:
        return next((a for a in attribute_names[1:] if not a.endswith(METADATA_SUFFIX)), None)
    for key, value in obj.items():
        if key != "source-ref" and not key.endswith(METADATA_SUFFIX) and isinstance(value, dict) and "annotations" in value:
            return key
    return None


def class_map_names(metadata: Any) -> dict[int, str]:
    """Class names from a Ground Truth '<attr>-metadata' class-map {"0": "dog", "5": "bone"}."""
    names: dict[int, str] = {}
    if isinstance(metadata, dict) and isinstance(metadata.get("class-map"), dict):
        for key, value in metadata["class-map"].items():
            try:
                names[int(key)] = str(value)
            except (TypeError, ValueError):
                continue
    return names


def read_manifest_channel(channel: str, manifests: list[Path], search_dirs: Sequence[Path],
                          attribute_names: Optional[Sequence[str]]) -> ChannelData:
    """Samples from augmented-manifest lines: the image reference attribute and the bounding-box attribute."""
    ref_attr = attribute_names[0] if attribute_names else "source-ref"
    data = ChannelData(channel, "manifest", [])
    for manifest in manifests:
        for lineno, obj in read_numbered_manifest(manifest):
            where = f"{manifest}, line {lineno}"
            label_attr = _label_attribute(obj, attribute_names)
            if ref_attr not in obj or label_attr is None or label_attr not in obj:
                data.skipped_images += 1
                continue
            image = resolve_ref(obj[ref_attr], search_dirs)
            label = obj[label_attr]
            objects, dropped = _clean(objects_from_annotations(label, where), image_size_of(label, where))
            data.dropped_boxes += dropped
            data.samples.append(Sample(f"{where} ({image.name})", FileImage(str(image)), objects, normalized=False))
            data.names.update(class_map_names(obj.get(label_attr + METADATA_SUFFIX)))
    if data.skipped_images:
        log.warning("channel %r: %d manifest lines lack %r or a bounding-box attribute and were skipped",
                    channel, data.skipped_images, ref_attr)
    if not data.samples:
        raise DataError(f"channel {channel!r}: no usable lines in {', '.join(map(str, manifests))}; each line needs "
                        f"{ref_attr!r} and a bounding-box attribute (set attribute_names, e.g. "
                        f"'[\"source-ref\", \"bounding-box\"]')")
    return data


# ---- Pascal VOC ------------------------------------------------------------------------------------------------

def _voc_objects(root: Any, source: str) -> Objects:
    boxes, names, difficult = [], [], []
    for obj in root.findall("object"):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            raise DataError(f"{source}: every <object> needs a <name> and a <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
        except (TypeError, ValueError):
            raise DataError(f"{source}: <bndbox> of {name!r} needs numeric xmin, ymin, xmax, ymax") from None
        boxes.append([xmin - 1.0, ymin - 1.0, xmax, ymax])  # 1-based inclusive pixels -> 0-based edges
        names.append(name)
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    if not boxes:
        return Objects(np.zeros((0, 4), np.float32), np.zeros((0,), object), np.zeros((0,), bool))
    return Objects(np.asarray(boxes, np.float32), np.asarray(names, dtype=object), np.asarray(difficult, bool))


def _voc_image(xml_path: Path, filename: Optional[str]) -> Path:
    images = xml_path.parent.parent / "JPEGImages"
    if filename and (images / filename).is_file():
        return images / filename
    for suffix in IMAGE_EXTENSIONS:
        candidate = images / (xml_path.stem + suffix)
        if candidate.is_file():
            return candidate
    raise DataError(f"{xml_path}: no image {filename or xml_path.stem + '.jpg'} in {images}; Pascal VOC folders "
                    f"hold JPEGImages/ beside Annotations/")


def read_voc(channel: str, folder: Path) -> ChannelData:
    """Every Annotations/*.xml under the channel, with its image in the sibling JPEGImages folder."""
    xmls = [p for p in files_with(folder, (".xml",)) if p.parent.name == "Annotations"]
    if not xmls:
        raise DataError(f"no Annotations/*.xml files under {folder}; a Pascal VOC channel holds Annotations/ and "
                        f"JPEGImages/ folders")
    data = ChannelData(channel, "voc", [], label_kind="name")
    for path in xmls:
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError as exc:
            raise DataError(f"{path}: not valid XML ({exc}); fix or remove the file") from None
        size = root.find("size")
        dims = None
        if size is not None and size.findtext("width") and size.findtext("height"):
            dims = (float(size.findtext("width")), float(size.findtext("height")))
        objects, dropped = _clean(_voc_objects(root, str(path)), dims)
        data.dropped_boxes += dropped
        image = _voc_image(path, (root.findtext("filename") or "").strip() or None)
        data.samples.append(Sample(str(image), FileImage(str(image)), objects, normalized=False))
    return data
