"""Read a detection channel in whichever format it holds (sniffed, or forced by data_format); Pipe mode spooled once."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence

from smcv.data.images import sniff_image_type
from smcv.data.recordio import IndexedRecordReader, index_beside, unpack
from smcv.detection.annotations import (MANIFEST_SUFFIXES, METADATA_SUFFIX, class_map_names, files_with,
                                        read_json_annotations, read_manifest_channel, read_voc)
from smcv.detection.labels import clean_boxes, image_size_of, objects_from_annotations, parse_packed_label
from smcv.detection.samples import ChannelData, RecordImage, Sample
from smcv.errors import ConfigError, DataError

log = logging.getLogger(__name__)
DATA_FORMATS = ("auto", "recordio", "json", "manifest", "voc")
CLASSES_FILE_SUFFIX = "classes.txt"


def annotation_channel(channel: str) -> str:
    """The built-in's name for a channel's JSON annotation channel."""
    return f"{channel}_annotation"


def sniff_format(channel: str, channels: dict[str, Path]) -> str:
    """The data format of a File-mode channel from its contents."""
    folder = channels[channel]
    if annotation_channel(channel) in channels:
        return "json"
    if files_with(folder, (".rec",)):
        return "recordio"
    if files_with(folder, MANIFEST_SUFFIXES):
        return "manifest"
    if any(p.parent.name == "Annotations" for p in files_with(folder, (".xml",))):
        return "voc"
    if files_with(folder, (".json",)):
        return "json"
    raise DataError(f"cannot tell the data format of channel {channel!r} ({folder}): expected a .rec file, a "
                    f".manifest/.jsonl augmented manifest, Pascal VOC Annotations/*.xml, or images with a "
                    f"{annotation_channel(channel)!r} channel of JSON files; or set data_format to one of "
                    f"{', '.join(DATA_FORMATS[1:])}")


def read_recordio(channel: str, rec_files: Sequence[Path]) -> ChannelData:
    """Images with packed detection labels, from one or more .rec files (each with its .idx when present)."""
    data = ChannelData(channel, "recordio", [])
    for rec in rec_files:
        reader = IndexedRecordReader(rec, index_beside(rec))
        for i in range(len(reader)):
            where = f"{rec.name} record {i}"
            header, _ = unpack(reader.read_at(i), where)
            where = f"{where} (id {header.id})"
            if header.flag == 0:
                raise DataError(f"{where}: has a single scalar label ({header.label:g}); object detection needs "
                                f"packed labels [2, 5, class, xmin, ymin, xmax, ymax, ...] (im2rec --pack-label, "
                                f"or smcv convert-detection)")
            objects, dropped = clean_boxes(parse_packed_label(header.label, where), 1.0, 1.0)
            data.dropped_boxes += dropped
            data.samples.append(Sample(where, RecordImage(reader, i, packed=True), objects, normalized=True))
    data.names.update(read_classes_file(rec_files[0].parent if rec_files else None))
    return data


def read_classes_file(folder: Optional[Path]) -> dict[int, str]:
    """Class names from a '*classes.txt' file (one name per line, line n = class n) in the folder, if any."""
    if folder is None:
        return {}
    found = [p for p in files_with(folder, (CLASSES_FILE_SUFFIX,))]
    if not found:
        return {}
    lines = [line.strip() for line in found[0].read_text(encoding="utf-8-sig").splitlines()]
    return {i: name for i, name in enumerate(lines) if name}


def _pipe_is_manifest(reader: IndexedRecordReader) -> bool:
    if not len(reader):
        return False
    return sniff_image_type(reader.read_at(0)[:16]) is not None


def read_pipe_manifest(channel: str, reader: IndexedRecordReader, attribute_names: Optional[Sequence[str]]) -> ChannelData:
    """Augmented-manifest Pipe records, one per attribute in AttributeNames order: image, label[, metadata]."""
    names = list(attribute_names or ["source-ref", "bounding-box"])
    group = len(names)
    if len(reader) % group:
        raise DataError(f"channel {channel!r}: {len(reader)} Pipe records is not a multiple of the {group} "
                        f"attribute_names {names}; set attribute_names to the channel's AttributeNames")
    image_at = next((i for i, n in enumerate(names) if n.endswith("-ref")), 0)
    label_at = next((i for i, n in enumerate(names) if i != image_at and not n.endswith(METADATA_SUFFIX)), None)
    meta_at = next((i for i, n in enumerate(names) if n.endswith(METADATA_SUFFIX)), None)
    if label_at is None:
        raise ConfigError(f"attribute_names {names} name no bounding-box attribute; use e.g. "
                          f"'[\"source-ref\", \"bounding-box\"]'")
    data = ChannelData(channel, "manifest", [])
    for n in range(len(reader) // group):
        where = f"channel {channel!r} object {n} ({names[label_at]!r} record {n * group + label_at})"
        label = _json_record(reader, n * group + label_at, where)
        objects, dropped = clean_boxes(objects_from_annotations(label, where), *(image_size_of(label, where) or (1e9, 1e9)))
        data.dropped_boxes += dropped
        data.samples.append(Sample(where, RecordImage(reader, n * group + image_at, packed=False), objects, False))
        if meta_at is not None:
            data.names.update(class_map_names(_json_record(reader, n * group + meta_at, where)))
    return data


def _json_record(reader: IndexedRecordReader, index: int, where: str) -> dict:
    raw = reader.read_at(index)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        kind = sniff_image_type(raw[:16])
        extra = f" (it is an {kind} image: the attribute order is wrong)" if kind else ""
        raise DataError(f"{where}: not a JSON label{extra} ({exc}); AttributeNames must list the image attribute "
                        f"first, then the bounding-box attribute, and attribute_names must match them") from None
    if not isinstance(value, dict):
        raise DataError(f"{where}: the label record must be a JSON object with 'annotations'")
    return value


def read_pipe_channel(channel: str, rec: Path, data_format: str, attribute_names: Optional[Sequence[str]]) -> ChannelData:
    """A Pipe-mode channel spooled to a local .rec, read as RecordIO or as an augmented manifest."""
    reader = IndexedRecordReader(rec, index_beside(rec))
    if data_format == "manifest" or (data_format == "auto" and _pipe_is_manifest(reader)):
        return read_pipe_manifest(channel, reader, attribute_names)
    if data_format not in ("auto", "recordio"):
        raise ConfigError(f"data_format {data_format!r} cannot be read in Pipe mode; Pipe channels carry RecordIO "
                          f"(.rec) or an augmented manifest: use data_format 'recordio', 'manifest' or 'auto'")
    return read_recordio(channel, [rec])


def read_channel(channel: str, channels: dict[str, Path], pipe: dict[str, Path], data_format: str = "auto",
                 attribute_names: Optional[Sequence[str]] = None) -> ChannelData:
    """All samples of one channel ('train' or 'validation'); `pipe`: the spooled .rec of each Pipe-mode channel."""
    if channel in pipe:
        data = read_pipe_channel(channel, pipe[channel], data_format, attribute_names)
    else:
        if channel not in channels or not Path(channels[channel]).is_dir():
            raise DataError(f"the {channel!r} channel has no data directory; supply it as an input channel")
        fmt = sniff_format(channel, channels) if data_format == "auto" else data_format
        data = _read_file_channel(channel, channels, fmt, attribute_names)
    log.info("%s", data.summary())
    return data


def _read_file_channel(channel: str, channels: dict[str, Path], fmt: str,
                       attribute_names: Optional[Sequence[str]]) -> ChannelData:
    folder = Path(channels[channel])
    if fmt == "recordio":
        recs = files_with(folder, (".rec",))
        if not recs:
            raise DataError(f"data_format is recordio but channel {channel!r} ({folder}) has no .rec file")
        return read_recordio(channel, recs)
    if fmt == "json":
        annotations = Path(channels.get(annotation_channel(channel), folder))
        return read_json_annotations(channel, folder, annotations)
    if fmt == "manifest":
        manifests = files_with(folder, MANIFEST_SUFFIXES)
        if not manifests:
            raise DataError(f"channel {channel!r} ({folder}) has no .manifest or .jsonl augmented manifest file")
        others = [Path(p) for name, p in sorted(channels.items()) if name != channel]
        return read_manifest_channel(channel, manifests, [folder, *others], attribute_names)
    if fmt == "voc":
        return read_voc(channel, folder)
    raise ConfigError(f"unknown data_format {fmt!r}; use one of {', '.join(DATA_FORMATS)}")
