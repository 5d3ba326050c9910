"""From channels to datasets: read train/validation, agree on class ids across them, wrap them as Datasets."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch

from smcv.config import HyperParameters
from smcv.data.jpeg import DEVICE_DECODE_NOTE, decode_on_device
from smcv.inputs import channel_inputs
from smcv.detection.datasets import DetectionDataset, DeviceCollate, collate
from smcv.augmentation_device import on_device
from smcv.detection.labels import map_class_ids, map_class_names, parse_class_names
from smcv.detection.samples import ChannelData
from smcv.detection.sources import read_channel
from smcv.detection.transforms import DecodeOnly, DetectionTransform
from smcv.errors import ConfigError, DataError
from smcv.task_api import PreparedData

log = logging.getLogger(__name__)


def _has_channel(name: str, channels: dict[str, Path], pipe: dict[str, Path]) -> bool:
    return name in channels or name in pipe


def resolve_labels(parts: Sequence[ChannelData], num_classes: int,
                   classes: Optional[list[str]]) -> tuple[list[list[np.ndarray]], list[str], Optional[list[int]]]:
    """Model class ids per sample for each channel, the class names, and the raw id of each model id if renumbered."""
    kinds = {p.label_kind for p in parts}
    if len(kinds) > 1:
        raise ConfigError("train and validation use different label kinds (Pascal VOC names vs class ids); "
                          "give both channels in the same format")
    if kinds == {"name"}:
        found = {str(n) for p in parts for s in p.samples for n in s.objects.labels}
        mapping, names = map_class_names(found, classes, num_classes)
        source_ids = None
    else:
        raw = {int(i) for p in parts for s in p.samples for i in s.objects.labels}
        hints: dict[int, str] = {}
        for part in reversed(parts):  # train's names win
            hints.update(part.names)
        if classes:
            hints.update(dict(enumerate(classes)))
        mapping, names = map_class_ids(raw, hints, num_classes)
        renumbered = any(k != v for k, v in mapping.items())
        source_ids = [raw_id for raw_id, _ in sorted(mapping.items(), key=lambda kv: kv[1])] if renumbered else None
    labels = [[np.asarray([mapping[x] for x in s.objects.labels], np.int64) for s in p.samples] for p in parts]
    return labels, names, source_ids


def _check_counts(hp: HyperParameters, train: ChannelData) -> None:
    if not train.samples:
        raise DataError(f"the train channel holds no images ({train.data_format}); supply at least one labelled image")
    if hp.num_training_samples != len(train.samples):
        log.warning("num_training_samples is %d but the train channel holds %d images; smcv uses the actual count",
                    hp.num_training_samples, len(train.samples))


def prepare_detection_data(hp: HyperParameters, channels: dict[str, Path], channel_config: dict[str, dict],
                           attribute_names: Optional[list[str]]) -> PreparedData:
    """Datasets for the engine, with class names and facts for the manifest."""
    pipe = channel_inputs(channels, channel_config).pipe
    if not _has_channel("train", channels, pipe):
        raise ConfigError("object detection needs a 'train' channel (and usually 'validation'); none was given")
    parts = [read_channel("train", channels, pipe, hp.data_format, attribute_names)]
    if _has_channel("validation", channels, pipe):
        parts.append(read_channel("validation", channels, pipe, hp.data_format, attribute_names))
    else:
        log.warning("no 'validation' channel: validation:mAP cannot be computed and the last epoch's model is kept")
    _check_counts(hp, parts[0])
    labels, names, source_ids = resolve_labels(parts, hp.num_classes, parse_class_names(hp.classes))
    device_augmentation = on_device(hp.augmentation_device)
    transform = DecodeOnly(hp.image_shape) if device_augmentation else DetectionTransform(hp.image_shape, hp.augmentation)
    train = DetectionDataset(parts[0].samples, labels[0], transform)
    train.keep_jpeg = device_augmentation and decode_on_device(torch.cuda.is_available())
    log.info("training augmentation (%s) runs on the %s%s", hp.augmentation,
             "training device, a batch at a time" if device_augmentation else "CPU, in the DataLoader workers",
             f"; {DEVICE_DECODE_NOTE}" if train.keep_jpeg else "")
    validation = None
    if len(parts) > 1:
        validation = DetectionDataset(parts[1].samples, labels[1], DetectionTransform(hp.image_shape, "none"))
    info: dict[str, Any] = {
        "data_format": {p.channel: p.data_format for p in parts},
        "images": {p.channel: len(p.samples) for p in parts},
        "empty_images": {p.channel: p.empty_images for p in parts},
        "dropped_boxes": {p.channel: p.dropped_boxes for p in parts},
        "source_class_ids": source_ids,
    }
    collate_fn = DeviceCollate(hp.image_shape, hp.augmentation) if device_augmentation else collate
    return PreparedData(train, validation, collate_fn=collate_fn, class_names=names, info=info)
