"""Every input format through DetectionTask.prepare_data: JSON channels, manifests (File and Pipe), RecordIO, VOC."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tests.helpers.detdata import (GT_IDS, TINY_HP, boxes_of, json_channels, manifest_channel, pipe_manifest, rec_channel, scene,
                     voc_channel)

from smcv.errors import ConfigError, DataError
from smcv.tasks.detection import DetectionTask

PIPE = {"TrainingInputMode": "Pipe", "RecordWrapperType": "RecordIO", "ContentType": "application/x-recordio"}


def prepare(channels, config=None, **hp):
    task = DetectionTask()
    resolved = task.schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, **{k: str(v) for k, v in hp.items()}})
    return task.prepare_data(resolved, channels, config or {})


def item_boxes(dataset, n):
    """Normalised boxes of item n (the validation transform resizes 64 -> 300)."""
    image, target = dataset[n]
    assert image.dtype == torch.uint8 and image.shape == (3, 300, 300)
    return target["boxes"].numpy() / 300.0, target["labels"].numpy()


def test_json_channels(tmp_path):
    channels = {**json_channels(tmp_path, "train", range(6)), **json_channels(tmp_path, "validation", range(6, 9))}
    data = prepare(channels)
    assert len(data.train) == 6 and len(data.validation) == 3
    assert data.class_names == ["red", "green"]
    assert data.info["data_format"] == {"train": "json", "validation": "json"}
    boxes, labels = item_boxes(data.validation, 0)  # image 6
    np.testing.assert_allclose(boxes, boxes_of(6), atol=2e-3)
    assert labels.tolist() == [c for c, *_ in scene(6)]
    images, targets = data.collate_fn([data.train[0], data.train[4]])
    assert images.shape == (2, 3, 300, 300) and targets[1]["boxes"].shape == (0, 4)  # image 4 has no objects


def test_manifest_file_mode_renumbers_sparse_ids(tmp_path):
    channels = {"train": manifest_channel(tmp_path, "train", range(6)),
                "validation": manifest_channel(tmp_path, "validation", range(6, 9))}
    data = prepare(channels)
    assert data.class_names == ["red", "green"]
    assert data.info["source_class_ids"] == [GT_IDS[0], GT_IDS[1]]
    boxes, labels = item_boxes(data.validation, 1)  # image 7: two objects
    np.testing.assert_allclose(boxes, boxes_of(7), atol=2e-3)
    assert labels.tolist() == [c for c, *_ in scene(7)]


def test_manifest_ids_kept_when_they_fit(tmp_path):
    data = prepare({"train": manifest_channel(tmp_path, "train", range(6))}, num_classes=8)
    assert data.info["source_class_ids"] is None
    assert data.class_names[3] == "red" and data.class_names[7] == "green" and len(data.class_names) == 8
    assert data.validation is None


def test_manifest_pipe_mode(tmp_path, opt_ml):
    pipe_manifest(opt_ml.base / "input" / "data", "train", range(6), metadata=True)
    pipe_manifest(opt_ml.base / "input" / "data", "validation", range(6, 9), metadata=True)
    data = prepare({}, {"train": PIPE, "validation": PIPE},
                   attribute_names='["source-ref", "bounding-box", "bounding-box-metadata"]')
    assert len(data.train) == 6 and len(data.validation) == 3
    assert data.class_names == ["red", "green"]
    boxes, labels = item_boxes(data.validation, 1)
    np.testing.assert_allclose(boxes, boxes_of(7), atol=2e-3)


def test_pipe_manifest_attribute_count_mismatch(tmp_path, opt_ml):
    pipe_manifest(opt_ml.base / "input" / "data", "train", range(4))
    with pytest.raises(DataError, match="not a multiple"):
        prepare({}, {"train": PIPE}, attribute_names="source-ref,bounding-box,bounding-box-metadata")


def test_recordio_file_and_pipe(tmp_path, opt_ml):
    channels = {"train": rec_channel(tmp_path, "train", range(6)), "validation": rec_channel(tmp_path, "validation", range(6, 9))}
    data = prepare(channels)
    assert data.info["data_format"]["train"] == "recordio" and data.info["empty_images"]["train"] == 1
    boxes, labels = item_boxes(data.validation, 1)
    np.testing.assert_allclose(boxes, boxes_of(7), atol=2e-3)
    fifo = opt_ml.base / "input" / "data" / "train_0"
    fifo.write_bytes((tmp_path / "train" / "train.rec").read_bytes())
    piped = prepare({}, {"train": {"TrainingInputMode": "Pipe"}})
    assert len(piped.train) == 6 and piped.info["data_format"]["train"] == "recordio"


def test_recordio_malformed_label_names_the_record(tmp_path):
    channels = {"train": rec_channel(tmp_path, "train", range(4), labels={2: [2, 5, 1, 0.1, 0.1, 0.5, 0.5, 0]})}
    with pytest.raises(DataError, match=r"train.rec record 2 \(id 2\).*not a multiple of the object width 5"):
        prepare(channels)


def test_voc_names_sorted_and_difficult(tmp_path):
    data = prepare({"train": voc_channel(tmp_path, "train", range(6)), "validation": voc_channel(tmp_path, "validation", range(6, 9))})
    assert data.class_names == ["green", "red"]
    image, target = data.validation[1]  # image 7: second object is difficult
    assert target["difficult"].tolist() == [False, True]
    expected = [1 - c for c, *_ in scene(7)]  # red=1, green=0 after sorting
    assert target["labels"].tolist() == expected
    np.testing.assert_allclose(target["boxes"].numpy() / 300, boxes_of(7), atol=2e-3)


def test_voc_with_classes_hyperparameter(tmp_path):
    data = prepare({"train": voc_channel(tmp_path, "train", range(3))}, classes="red,green")
    assert data.class_names == ["red", "green"]
    with pytest.raises(ConfigError, match="not in the 'classes'"):
        prepare({"train": voc_channel(tmp_path, "train", range(3))}, classes="red")


def test_degenerate_boxes_dropped_and_counted(tmp_path):
    channels = json_channels(tmp_path, "train", range(2))
    note = channels["train_annotation"] / "img0.json"
    label = json.loads(note.read_text())
    label["annotations"] += [{"class_id": 1, "left": 10, "top": 10, "width": 0, "height": 5},
                             {"class_id": 1, "left": 70, "top": 10, "width": 5, "height": 5}]  # outside the image
    note.write_text(json.dumps(label))
    data = prepare(channels)
    assert data.info["dropped_boxes"]["train"] == 2
    assert len(data.train[0][1]["labels"]) == len(scene(0))


def test_too_many_classes_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="num_classes"):
        prepare(json_channels(tmp_path, "train", range(6)), num_classes=1)


def test_unknown_layout_tells_what_was_expected(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="cannot tell the data format.*data_format"):
        prepare({"train": tmp_path / "train"})


def test_training_augmentation_keeps_boxes_valid(tmp_path):
    data = prepare(json_channels(tmp_path, "train", range(6)), augmentation="ssd")
    torch.manual_seed(0)
    for n in range(6):
        for _ in range(3):
            image, target = data.train[n]
            boxes = target["boxes"]
            assert image.shape == (3, 300, 300) and image.dtype == torch.uint8
            assert len(boxes) == len(target["labels"]) == len(target["difficult"])
            if len(boxes):
                assert bool((boxes[:, 2:] > boxes[:, :2]).all()) and boxes.min() >= 0 and boxes.max() <= 300
