"""Where (image, mask) pairs come from: the built-in's four folders, a Ground Truth manifest, or Pipe-mode RecordIO."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from smcv.data.images import IMAGE_EXTENSIONS, sniff_image_type
from smcv.data.manifest import read_numbered_manifest, resolve_ref
from smcv.data.recordio import IndexedRecordReader, index_beside, unpack
from smcv.errors import DataError
from smcv.segmentation.masks import parse_color_map

log = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".jsonlines", ".json")
_SHOWN = 5


@dataclass
class PairSource:
    """Indexable (image bytes, mask bytes, image name, mask name) pairs from files or a spooled RecordIO file."""

    files: list[tuple[Path, Path]] = field(default_factory=list)
    rec: Optional[Path] = None
    rec_pairs: int = 0
    color_map: Optional[dict[int, int]] = None  # from a Ground Truth manifest's internal-color-map
    class_names: dict[int, str] = field(default_factory=dict)
    kind: str = "folders"

    def __post_init__(self) -> None:
        self._reader = None

    def __len__(self) -> int:
        return self.rec_pairs if self.rec is not None else len(self.files)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_reader"] = None  # reopened in each DataLoader worker
        return state

    def mask_bytes(self, i: int) -> tuple[bytes, str]:
        """Only the mask of pair i (for sampling mask values)."""
        if self.rec is not None:
            return self._record(2 * i + 1), f"{self.rec} (record {2 * i + 1}, mask of pair {i})"
        return _read(self.files[i][1]), str(self.files[i][1])

    def get(self, i: int) -> tuple[bytes, bytes, str, str]:
        """Image bytes, mask bytes and their names for error messages."""
        if self.rec is not None:
            return (self._record(2 * i), self._record(2 * i + 1),
                    f"{self.rec} (record {2 * i}, image of pair {i})", f"{self.rec} (record {2 * i + 1}, mask of pair {i})")
        image, mask = self.files[i]
        return _read(image), _read(mask), str(image), str(mask)

    def _record(self, index: int) -> bytes:
        if self._reader is None:
            self._reader = IndexedRecordReader(self.rec, index_beside(self.rec))
        payload = self._reader.read_at(index)
        if sniff_image_type(payload) is None and len(payload) > 24:
            inner = unpack(payload, str(self.rec))[1]  # an im2rec-style record: header, then the image
            if sniff_image_type(inner) is not None:
                return inner
        return payload


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read the file ({exc})") from None


def _by_key(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """Files under folder keyed by their relative path without extension."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in suffixes and not path.name.startswith("."):
            found.setdefault(path.relative_to(folder).with_suffix("").as_posix(), path)
    return found


def folder_pairs(images_dir: Path, masks_dir: Path, split: str) -> PairSource:
    """The built-in layout: every image in `<split>` has a PNG mask with the same basename in `<split>_annotation`."""
    images = _by_key(images_dir, IMAGE_EXTENSIONS)
    masks = _by_key(masks_dir, IMAGE_EXTENSIONS)
    if not images:
        raise DataError(f"the {split} channel ({images_dir}) holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    missing = [key for key in images if key not in masks]
    if missing:
        shown = ", ".join(str(images[k].relative_to(images_dir)) for k in missing[:_SHOWN])
        raise DataError(f"{len(missing)} image(s) in the {split} channel have no mask with the same basename in "
                        f"{split}_annotation ({masks_dir}), e.g. {shown}; add <name>.png masks or remove the images")
    extra = len(set(masks) - set(images))
    if extra:
        log.warning("%d mask(s) in %s have no image in %s and are ignored", extra, masks_dir, images_dir)
    return PairSource(files=[(images[k], masks[k]) for k in images], kind="folders")


def find_manifests(folder: Path) -> list[Path]:
    """Augmented-manifest files in a channel folder."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in MANIFEST_SUFFIXES
                  and not p.name.endswith("label_map.json"))


def _mask_attribute(line: dict, wanted: Optional[str], source: str) -> str:
    if wanted:
        if wanted not in line:
            raise DataError(f"{source}: no {wanted!r} key (mask_attribute); keys are {', '.join(sorted(line))}")
        return wanted
    refs = [k for k in line if k.endswith("-ref") and k != "source-ref" and "-metadata" not in k]
    if len(refs) == 1:
        return refs[0]
    if not refs:
        raise DataError(f"{source}: no mask attribute ending in '-ref' besides source-ref; a semantic-segmentation "
                        f"manifest line looks like {{\"source-ref\": \"s3://.../img.jpg\", \"<label>-ref\": \"s3://.../mask.png\"}}")
    raise DataError(f"{source}: several mask attributes {', '.join(sorted(refs))}; choose one with the mask_attribute hyperparameter")


def _merge_colors(line: dict, attribute: str, source: str, colors: dict[int, int], names: dict[int, str]) -> None:
    stem = attribute[: -len("-ref")]
    for key in (f"{attribute}-metadata", f"{stem}-metadata"):
        meta = line.get(key)
        if isinstance(meta, dict) and isinstance(meta.get("internal-color-map"), dict):
            found, found_names = parse_color_map(meta["internal-color-map"], f"{source} ({key})")
            for color, cls in found.items():
                if colors.setdefault(color, cls) != cls:
                    raise DataError(f"{source}: colour #{color:06x} means class {colors[color]} on one line and "
                                    f"{cls} on another; use one internal-color-map for the whole manifest")
            names.update(found_names)
            return


def manifest_pairs(manifest: Path, search_dirs: list[Path], mask_attribute: Optional[str]) -> PairSource:
    """Pairs from a Ground Truth augmented manifest in File mode, with its colour map when it has one."""
    files: list[tuple[Path, Path]] = []
    colors: dict[int, int] = {}
    names: dict[int, str] = {}
    for lineno, line in read_numbered_manifest(manifest):
        where = f"{manifest}, line {lineno}"
        if "source-ref" not in line:
            raise DataError(f"{where}: no 'source-ref' (the image); keys are {', '.join(sorted(line))}")
        attribute = _mask_attribute(line, mask_attribute, where)
        files.append((resolve_ref(line["source-ref"], search_dirs), resolve_ref(line[attribute], search_dirs)))
        _merge_colors(line, attribute, where, colors, names)
    if not files:
        raise DataError(f"{manifest}: the manifest has no lines")
    return PairSource(files=files, color_map=colors or None, class_names=names, kind="manifest")


def record_pairs(rec: Path, split: str) -> PairSource:
    """Pipe-mode augmented manifest records, spooled to a .rec file: image, mask, image, mask, ..."""
    with IndexedRecordReader(rec, index_beside(rec)) as reader:
        count = len(reader)
    if count == 0 or count % 2:
        raise DataError(f"the {split} channel delivered {count} records; a segmentation augmented manifest gives two "
                        f"per image (AttributeNames ['source-ref', '<label>-ref'], RecordWrapperType RecordIO)")
    return PairSource(rec=rec, rec_pairs=count // 2, kind="pipe")
