"""Where classification samples come from: class folders, .lst + images, or MXNet RecordIO (sniffed, or forced)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from smcv.data.images import IMAGE_EXTENSIONS
from smcv.data.lst import read_numbered_lst
from smcv.errors import ConfigError, DataError

FORMATS = ("auto", "folders", "lst", "recordio")


@dataclass(frozen=True)
class FileItem:
    """An image file and its label(s); origin names where the label came from (a .lst file and line)."""

    path: Path
    labels: tuple[float, ...]
    origin: str = ""


@dataclass(frozen=True)
class Split:
    """One split (train or validation): its format and either file items or RecordIO files."""

    name: str
    format: str
    items: list[FileItem]
    rec_files: list[Path]
    class_names: list[str]


def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))


def detect_format(split: str, channels: dict[str, Path]) -> str:
    """Sniff a split's format from its channels' contents."""
    folder = channels[split]
    if f"{split}_lst" in channels or _files(folder, (".lst",)):
        return "lst"
    if _files(folder, (".rec",)):
        return "recordio"
    if any(p.is_dir() for p in folder.iterdir()):
        return "folders"
    raise DataError(f"channel {split!r} ({folder}) holds no .rec file, no .lst file and no class folders; "
                    "use one folder per class (train/<class>/*.png), an .lst file with images, or MXNet RecordIO")


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


def read_split(split: str, channels: dict[str, Path], data_format: str, class_names: Optional[list[str]] = None) -> Split:
    """List a split's samples; empty or unreadable channels raise DataError naming the channel."""
    if data_format not in FORMATS:
        raise ConfigError(f"data_format {data_format!r} is not one of {', '.join(FORMATS)}")
    folder = channels[split]
    if not folder.is_dir() or not any(folder.iterdir()):
        raise DataError(f"channel {split!r} ({folder}) is empty; upload the {split} images or records to it")
    fmt = detect_format(split, channels) if data_format == "auto" else data_format
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

