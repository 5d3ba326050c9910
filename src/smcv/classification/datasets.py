"""Classification datasets over image files, RecordIO records or spooled manifest records, with a decode-once cache."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms.v2 import functional as F

from smcv.classification.samples import FileItem
from smcv.data.images import decode_image
from smcv.data.jpeg import EncodedJpeg, encoded_jpeg
from smcv.data.recordio import IndexedRecordReader, index_beside, unpack
from smcv.errors import DataError

log = logging.getLogger(__name__)


def to_target(labels: tuple[float, ...] | np.ndarray | float, num_classes: int, multi_label: bool, source: str) -> torch.Tensor:
    """A class-id tensor, or a multi-hot float vector for multi_label."""
    values = np.atleast_1d(np.asarray(labels, dtype=np.float64))
    if not multi_label:
        label = float(values[0])
        if label != int(label) or not 0 <= label < num_classes:
            raise DataError(f"{source}: label {label:g} is not a class id in 0..{num_classes - 1} (num_classes={num_classes})")
        return torch.tensor(int(label), dtype=torch.long)
    target = torch.zeros(num_classes, dtype=torch.float32)
    if values.size == num_classes and set(values.tolist()) <= {0.0, 1.0}:
        return torch.from_numpy(values.astype(np.float32))
    for label in values:
        if label != int(label) or not 0 <= label < num_classes:
            raise DataError(f"{source}: label {label:g} is not a class id in 0..{num_classes - 1}")
        target[int(label)] = 1.0
    return target


def image_to_tensor(image) -> torch.Tensor:
    """A PIL image as a uint8 CHW tensor."""
    return F.pil_to_tensor(image)


class ClassificationDataset(Dataset):
    """Samples (uint8 image, target) from files, RecordIO or spooled manifest records, transformed on access; with
    keep_jpeg, JPEGs the device decoder takes stay encoded (EncodedJpeg, not transformed: decoded and resized on the
    training device, see device_augment)."""

    def __init__(self, items: list[FileItem], rec_files: list[Path], mode: str, num_classes: int, multi_label: bool,
                 transform: Callable, cache_limit_bytes: int = 0) -> None:
        self.items, self.mode, self.num_classes, self.multi_label = items, mode, num_classes, multi_label
        self.transform = transform
        self.readers = [IndexedRecordReader(rec, index_beside(rec)) for rec in rec_files]
        spooled = {item.path for item in items if item.record is not None}  # Pipe-mode manifest records
        self.item_readers = {rec: IndexedRecordReader(rec, index_beside(rec)) for rec in spooled}
        self.index: list[tuple[int, int]] = [(r, i) for r, reader in enumerate(self.readers) for i in range(len(reader))]
        self.cache: Optional[list[tuple[torch.Tensor, torch.Tensor]]] = None
        self.keep_jpeg = False
        if cache_limit_bytes and len(self) and self._estimate_bytes() <= cache_limit_bytes:
            self.cache = self._decode_all()

    def __len__(self) -> int:
        return len(self.items) if self.items else len(self.index)

    def _target(self, i: int) -> torch.Tensor:
        """Sample i's target from its label alone (a RecordIO header is read, no image is decoded)."""
        if self.items:
            item = self.items[i]
            return to_target(item.labels, self.num_classes, self.multi_label, _item_where(item))
        r, k = self.index[i]
        source = f"{self.readers[r].rec_path.name} record {k}"
        header, _ = unpack(self.readers[r].read_at(k), source)
        return to_target(header.label, self.num_classes, self.multi_label, source)

    def _load(self, i: int) -> tuple[torch.Tensor | EncodedJpeg, torch.Tensor]:
        if self.items:
            item = self.items[i]
            where = _item_where(item)
            if item.record is None:
                image = self._image(_read(item.path), str(item.path))
            else:
                image = self._image(self.item_readers[item.path].read_at(item.record), where)
            return image, to_target(item.labels, self.num_classes, self.multi_label, where)
        r, k = self.index[i]
        source = f"{self.readers[r].rec_path.name} record {k}"
        header, payload = unpack(self.readers[r].read_at(k), source)
        return self._image(payload, source), to_target(header.label, self.num_classes, self.multi_label, source)

    def _image(self, data: bytes, source: str) -> torch.Tensor | EncodedJpeg:
        """uint8 CHW pixels decoded by Pillow, or (keep_jpeg) the header-checked JPEG the device decoder takes."""
        encoded = encoded_jpeg(data, source, self.mode) if self.keep_jpeg else None
        return encoded if encoded is not None else image_to_tensor(decode_image(data, source, mode=self.mode))

    def _estimate_bytes(self) -> int:
        sample, _ = self._load(0)
        return sample.numel() * len(self)

    def _decode_all(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            decoded = list(pool.map(self._load, range(len(self))))
        log.info("decoded %d images once into memory (%.1f MB)", len(decoded), sum(t.numel() for t, _ in decoded) / 1e6)
        return decoded

    def __getitem__(self, i: int) -> tuple[torch.Tensor | EncodedJpeg, torch.Tensor]:
        image, target = self.cache[i] if self.cache is not None else self._load(i)
        return (image if isinstance(image, EncodedJpeg) else self.transform(image)), target

    def class_id(self, i: int) -> int:
        """The (first) class id of sample i without decoding its image."""
        if self.cache is not None:
            return int(self.cache[i][1].reshape(-1)[0])
        if self.items:
            return int(self.items[i].labels[0])
        r, k = self.index[i]
        header, _ = unpack(self.readers[r].read_at(k), f"{self.readers[r].rec_path.name} record {k}")
        return int(np.atleast_1d(header.label)[0])

    def targets(self) -> list[torch.Tensor]:
        """All targets (from the labels and RecordIO headers when not cached; no image is decoded)."""
        if self.cache is not None:
            return [t for _, t in self.cache]
        return [self._target(i) for i in range(len(self))]


def _item_where(item: FileItem) -> str:
    """How errors name a file sample: its file name and, when known, where its label came from."""
    return f"{item.path.name} ({item.origin})" if item.origin else item.path.name


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror}") from exc


def positive_weights(dataset: ClassificationDataset, num_classes: int) -> list[float]:
    """Per class (negatives / positives) over the training set: BCE positive weights for use_weighted_loss."""
    targets = torch.stack(dataset.targets())
    positives = targets.sum(dim=0).clamp(min=1)
    return ((len(targets) - positives) / positives).tolist()
