"""Where classification samples come from: class folders, .lst + images, MXNet RecordIO or a Ground Truth augmented
manifest (sniffed, or forced), in File or Pipe mode."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from smcv.classification.manifest import (MANIFEST_SUFFIXES, LabelRules, declares_manifest, manifest_items,
                                          merge_names, pipe_holds_manifest, record_items)
from smcv.classification.samples import FileItem
from smcv.data.images import IMAGE_EXTENSIONS
from smcv.data.lst import read_numbered_lst
from smcv.errors import ConfigError, DataError

FORMATS = ("auto", "folders", "lst", "recordio", "manifest")
LAYOUTS = ("one folder per class (train/<class>/*.png), an .lst file with images, MXNet RecordIO (.rec), or a "
           "Ground Truth augmented manifest (.manifest/.jsonl lines with source-ref and class)")

@dataclass(frozen=True)
class Split:
    """One split (train or validation): its format, file items or RecordIO files, and class names it carries."""

    name: str
    format: str
    items: list[FileItem]
    rec_files: list[Path]
    class_names: list[str]
    named: dict[int, str] = field(default_factory=dict)  # class id -> name from manifest metadata


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))


def detect_format(split: str, channels: dict[str, Path], channel_config: Optional[dict] = None) -> str:
    """Sniff a File-mode split's format from its channel config (AttributeNames) and its channels' contents."""
    folder = channels[split]
    if declares_manifest(channel_config or {}):
        return "manifest"
    if f"{split}_lst" in channels or _files(folder, (".lst",)):
        return "lst"
    if _files(folder, (".rec",)):
        return "recordio"
    if _files(folder, MANIFEST_SUFFIXES):
        return "manifest"
    if any(p.is_dir() for p in folder.iterdir()):
        return "folders"
    raise DataError(f"channel {split!r} ({folder}) holds no .rec file, no .lst file, no .manifest/.jsonl file and no "
                    f"class folders; use {LAYOUTS}")


def _folder_items(folder: Path, split: str, class_names: Optional[list[str]]) -> tuple[list[FileItem], list[str]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = class_names or classes
    unknown = sorted(set(classes) - set(names))
    if unknown:
        raise DataError(f"channel {split!r} has class folders {unknown} that the train channel does not have ({names})")
    items = [FileItem(path, (float(names.index(cls)),)) for cls in classes for path in _files(folder / cls, IMAGE_EXTENSIONS)]
    return items, names


def _lst_items(split: str, channels: dict[str, Path]) -> list[FileItem]:
    lst_folder = channels.get(f"{split}_lst", channels[split])
    lst_files = _files(lst_folder, (".lst",))
    if not lst_files:
        raise DataError(f"channel {split}_lst ({lst_folder}) holds no .lst file")
    root = channels[split]
    items = []
    for lst in lst_files:
        for lineno, entry in read_numbered_lst(lst):
            path = root / entry.path
            if not path.is_file():
                raise DataError(f"{lst.name}: image {entry.path!r} (index {entry.index}) is not in channel {split!r}; "
                                "paths in .lst files are relative to the image channel's root")
            items.append(FileItem(path, tuple(entry.labels), f"{lst}, line {lineno}"))
    return items


def _manifest_split(split: str, channels: dict[str, Path], rules: Optional[LabelRules]) -> Split:
    folder = channels[split]
    manifests = _files(folder, MANIFEST_SUFFIXES)
    if not manifests:
        raise DataError(f"channel {split!r} ({folder}) holds no .manifest or .jsonl augmented manifest file "
                        "(data_format=manifest)")
    others = [Path(p) for name, p in sorted(channels.items()) if name != split]
    items, named = manifest_items(manifests, [folder, *others], _rules(rules))
    if not items:
        raise DataError(f"channel {split!r}: {', '.join(map(str, manifests))} hold no lines")
    return Split(split, "manifest", items, [], [], named)


def _pipe_split(split: str, rec: Path, data_format: str, rules: Optional[LabelRules], channel_config: dict,
                class_names: Optional[list[str]]) -> Split:
    if data_format == "manifest" or (data_format == "auto" and pipe_holds_manifest(rec, channel_config)):
        items, named = record_items(rec, split, _rules(rules))
        return Split(split, "manifest", items, [], [], named)
    if data_format not in ("auto", "recordio"):
        raise ConfigError(f"data_format {data_format!r} cannot be read in Pipe mode: a Pipe channel carries MXNet "
                          "RecordIO or an augmented manifest (RecordWrapperType RecordIO); use data_format auto, "
                          "recordio or manifest")
    return Split(split, "recordio", [], [rec], class_names or [])


def _rules(rules: Optional[LabelRules]) -> LabelRules:
    if rules is None:
        raise ValueError("reading an augmented manifest needs LabelRules (num_classes, multi_label)")
    return rules


def read_split(split: str, channels: dict[str, Path], data_format: str, class_names: Optional[list[str]] = None, *,
               rules: Optional[LabelRules] = None, pipe: Optional[Path] = None,
               channel_config: Optional[dict] = None) -> Split:
    """List a split's samples (`pipe`: its spooled Pipe-mode .rec); empty or unreadable channels raise DataError."""
    if data_format not in FORMATS:
        raise ConfigError(f"data_format {data_format!r} is not one of {', '.join(FORMATS)}")
    if pipe is not None:
        return _pipe_split(split, pipe, data_format, rules, channel_config or {}, class_names)
    folder = channels[split]
    if not folder.is_dir() or not any(folder.iterdir()):
        raise DataError(f"channel {split!r} ({folder}) is empty; upload the {split} images or records to it")
    fmt = detect_format(split, channels, channel_config) if data_format == "auto" else data_format
    if fmt == "manifest":
        return _manifest_split(split, channels, rules)
    if fmt == "recordio":
        recs = _files(folder, (".rec",))
        if not recs:
            raise DataError(f"channel {split!r} holds no .rec file (data_format=recordio)")
        return Split(split, fmt, [], recs, class_names or [])
    if fmt == "folders":
        items, names = _folder_items(folder, split, class_names)
    else:
        items, names = _lst_items(split, channels), class_names or []
    if not items:
        raise DataError(f"channel {split!r} ({folder}) holds no images ({', '.join(IMAGE_EXTENSIONS)}) in the {fmt} layout")
    return Split(split, fmt, items, [], names)


def class_names_for(num_classes: int, *splits: Optional[Split]) -> list[str]:
    """Class names in id order: folder names, else names from manifest metadata with ids as the fallback."""
    present = [s for s in splits if s is not None]
    if present and present[0].class_names:
        return list(present[0].class_names)
    named: dict[int, str] = {}
    for split in present:
        merge_names(named, split.named, f"the {split.name} channel's manifest")
    return [named.get(i, str(i)) for i in range(num_classes)]


def check_labels(items: list[FileItem], num_classes: int, multi_label: bool, split: str) -> None:
    """Every label is a valid class id (or a multi-hot vector of num_classes)."""
    for item in items:
        labels = item.labels
        if multi_label and len(labels) == num_classes and set(labels) <= {0.0, 1.0}:
            continue
        for label in labels if multi_label else labels[:1]:
            if label != int(label) or not 0 <= label < num_classes:
                where = f" ({item.origin})" if item.origin else ""
                raise DataError(f"{split}: {item.path.name}{where} has label {label:g}, but num_classes is "
                                f"{num_classes}; class ids must be integers 0..num_classes-1")

