"""Packed MXNet detection labels (MXNet's parsing rules), box cleaning and class-id mapping."""

from __future__ import annotations

import numpy as np
import pytest

from smcv.detection.labels import (Objects, clean_boxes, map_class_ids, map_class_names, objects_from_annotations,
                                   pack_label, parse_class_names, parse_packed_label)
from smcv.errors import ConfigError, DataError


def test_parse_two_objects_with_padding():
    raw = [2, 5, 1, 0.1, 0.2, 0.5, 0.6, 0, 0.3, 0.3, 0.9, 0.8] + [-1] * 10  # label_width padding
    objects = parse_packed_label(np.asarray(raw, np.float32), "r")
    assert objects.labels.tolist() == [1, 0]
    np.testing.assert_allclose(objects.boxes, [[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.8]], rtol=1e-6)
    assert objects.difficult.tolist() == [False, False]


def test_parse_wider_header_and_difficult_column():
    raw = [4, 6, 640, 480, 2, 0.1, 0.1, 0.2, 0.2, 1, 0, 0.5, 0.5, 0.7, 0.9, 0]
    objects = parse_packed_label(np.asarray(raw), "r")
    assert objects.labels.tolist() == [2, 0] and objects.difficult.tolist() == [True, False]


@pytest.mark.parametrize("raw, message", [
    ([2, 5, 1, 0.1, 0.1, 0.5], "6 values, fewer than the 7"),
    ([1, 5, 1, 0.1, 0.1, 0.5, 0.5], "header width 1 must be >= 2"),
    ([2, 4, 1, 0.1, 0.1, 0.5, 0.5], "object width 4 must be >= 5"),
    ([2, 5, 1, 0.1, 0.1, 0.5, 0.5, 0], "6 object values .* not a multiple of the object width 5"),
    ([2, 5, 1.5, 0.1, 0.1, 0.5, 0.5], "whole numbers"),
    ([2, 5, 1, 10, 20, 50, 60], "look like pixels"),
    ([2, 5, 1, 0.1, float("nan"), 0.5, 0.5], "NaN"),
])
def test_malformed_labels_are_rejected_with_the_record_named(raw, message):
    with pytest.raises(DataError, match=r"^DataError: train.rec record 3: .*" + message):
        parse_packed_label(np.asarray(raw, np.float32), "train.rec record 3")


def test_pack_label_round_trip_and_empty_image():
    boxes = np.array([[0.1, 0.2, 0.3, 0.4]], np.float32)
    packed = pack_label(boxes, [3])
    assert packed.tolist() == pytest.approx([2, 5, 3, 0.1, 0.2, 0.3, 0.4])
    back = parse_packed_label(packed, "x")
    assert back.labels.tolist() == [3]
    empty = pack_label(np.zeros((0, 4)), [])
    assert empty.tolist() == [2, 5, -1, -1, -1, -1, -1]
    assert len(parse_packed_label(empty, "x").labels) == 0


def test_clean_boxes_clips_and_drops_degenerate():
    objects = Objects(np.array([[-5, -5, 10, 10], [5, 5, 5, 9], [20, 20, 30, 30], [8, 2, 12, 6]], np.float32),
                      np.array([0, 1, 2, 3]), np.zeros(4, bool))
    kept, dropped = clean_boxes(objects, 16, 16)
    assert dropped == 2 and kept.labels.tolist() == [0, 3]
    np.testing.assert_allclose(kept.boxes, [[0, 0, 10, 10], [8, 2, 12, 6]])


def test_ground_truth_annotations_to_pixel_boxes():
    label = {"annotations": [{"class_id": 5, "left": 10, "top": 20, "width": 30, "height": 40}]}
    objects = objects_from_annotations(label, "m")
    assert objects.labels.tolist() == [5] and objects.boxes.tolist() == [[10, 20, 40, 60]]
    with pytest.raises(DataError, match="missing width"):
        objects_from_annotations({"annotations": [{"class_id": 0, "left": 1, "top": 1, "height": 2}]}, "m, line 4")


def test_class_id_mapping_rules():
    assert map_class_ids({0, 1}, {}, 3) == ({0: 0, 1: 1}, ["class_0", "class_1", "class_2"])
    mapping, names = map_class_ids({0, 5}, {0: "dog", 5: "bone"}, 2)
    assert mapping == {0: 0, 5: 1} and names == ["dog", "bone"]
    mapping, names = map_class_ids({0, 5}, {0: "dog", 5: "bone"}, 6)  # fits: kept as the built-in does
    assert mapping == {0: 0, 5: 5} and names[5] == "bone"
    with pytest.raises(ConfigError, match="set num_classes to at least 3"):
        map_class_ids({0, 4, 9}, {}, 2)


def test_class_names_mapping():
    assert map_class_names({"dog", "cat"}, None, 2) == ({"cat": 0, "dog": 1}, ["cat", "dog"])
    assert map_class_names({"dog"}, ["dog", "cat"], 3)[1] == ["dog", "cat", "class_2"]
    assert parse_class_names('["a", "b"]') == ["a", "b"] and parse_class_names("a, b") == ["a", "b"]
    with pytest.raises(ConfigError):
        parse_class_names("a,a")
