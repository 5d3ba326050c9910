"""What every detection reader produces: samples (an image reference and its objects) per channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from smcv.data.recordio import IndexedRecordReader, unpack
from smcv.detection.labels import Objects
from smcv.errors import DataError


class FileImage(NamedTuple):
    """An image file on local disk."""

    path: str

    def read(self) -> bytes:
        """The encoded image bytes."""
        try:
            return Path(self.path).read_bytes()
        except OSError as exc:
            raise DataError(f"{self.path}: cannot read image file ({exc})") from None


class RecordImage(NamedTuple):
    """An image inside a RecordIO record: packed (IRHeader + label + image) or raw (augmented-manifest Pipe)."""

    reader: IndexedRecordReader
    index: int
    packed: bool

    def read(self) -> bytes:
        """The encoded image bytes."""
        record = self.reader.read_at(self.index)
        if not self.packed:
            return record
        return unpack(record, f"{self.reader.rec_path.name} record {self.index}")[1]


@dataclass
class Sample:
    """One image: where to read it, its objects, and whether the boxes are fractions (True) or pixels."""

    source: str
    image: FileImage | RecordImage
    objects: Objects
    normalized: bool


@dataclass
class ChannelData:
    """The samples of one channel and what the reader learnt about them."""

    channel: str
    data_format: str
    samples: list[Sample]
    #: 'id' when labels are integer class ids, 'name' when they are class names (Pascal VOC)
    label_kind: str = "id"
    #: class names the data itself declares (GT class-map, JSON categories, classes.txt), by raw id
    names: dict[int, str] = field(default_factory=dict)
    dropped_boxes: int = 0
    skipped_images: int = 0

    @property
    def empty_images(self) -> int:
        """Images with no object left (they train as background)."""
        return sum(1 for s in self.samples if not len(s.objects.labels))

    def summary(self) -> str:
        """One log line about the channel."""
        boxes = sum(len(s.objects.labels) for s in self.samples)
        return (f"channel {self.channel!r}: {self.data_format}, {len(self.samples)} images, {boxes} boxes, "
                f"{self.empty_images} images without boxes, {self.dropped_boxes} degenerate boxes dropped"
                + (f", {self.skipped_images} unlabelled images skipped" if self.skipped_images else ""))
