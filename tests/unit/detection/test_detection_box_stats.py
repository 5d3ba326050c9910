"""Box statistics against default boxes, on hand-made boxes: sizes per class, share without a default box at IoU 0.5."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from smcv.detection.box_stats import best_anchor_iou, better_layouts, coverage, default_boxes, relative_boxes
from smcv.detection.labels import Objects
from smcv.detection.samples import FileImage, Sample

ANCHORS = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])


def test_best_anchor_iou_by_hand():
    boxes = np.array([[0.0, 0.0, 0.5, 0.5],      # an anchor exactly: 1
                      [0.0, 0.0, 0.25, 0.5],     # half of the first anchor: 0.5
                      [0.0, 0.0, 0.1, 0.1]])     # 0.01 / 0.25 = 0.04
    np.testing.assert_allclose(best_anchor_iou(boxes, ANCHORS), [1.0, 0.5, 0.04], atol=1e-6)


def test_coverage_per_class_sizes_and_poorly_matched_share():
    boxes = np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0],   # class 0: fit the anchors
                      [0.0, 0.0, 0.1, 0.1], [0.6, 0.6, 0.7, 0.7], [0.5, 0.5, 0.9, 0.9]])  # class 2: two tiny, one fits
    labels = np.array([0, 0, 2, 2, 2])
    found = coverage(boxes, labels, ANCHORS, num_classes=3)
    assert [c.class_id for c in found] == [0, 2]  # class 1 has no boxes
    zero, two = found
    assert (zero.boxes, zero.poorly_matched, zero.side_median) == (2, 0.0, pytest.approx(0.5))
    assert two.boxes == 3 and two.poorly_matched == pytest.approx(2 / 3)  # 0.4-side box: IoU 0.16/0.25 = 0.64
    assert (two.side_p10, two.side_median) == (pytest.approx(0.1), pytest.approx(0.1))
    assert two.side_p90 == pytest.approx(0.1 + 0.8 * 0.3)  # numpy's linear quantile between 0.1 and 0.4


def test_relative_boxes_divide_pixel_boxes_by_the_image_size(tmp_path):
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    pixels = Sample("a.png", FileImage(str(tmp_path / "a.png")),
                    Objects(np.array([[20.0, 10.0, 120.0, 60.0]]), np.array([1]), np.array([False])), normalized=False)
    fractions = Sample("b", FileImage(str(tmp_path / "missing.png")),  # normalised boxes: the image is never read
                       Objects(np.array([[0.1, 0.2, 0.3, 0.4]]), np.array([0]), np.array([False])), normalized=True)
    empty = Sample("c", FileImage(str(tmp_path / "missing.png")), Objects.empty(), normalized=False)
    boxes, labels = relative_boxes([pixels, fractions, empty], [np.array([1]), np.array([0]), np.array([], np.int64)])
    np.testing.assert_allclose(boxes, [[0.1, 0.1, 0.6, 0.6], [0.1, 0.2, 0.3, 0.4]])
    assert labels.tolist() == [1, 0]


def test_default_boxes_are_the_networks_as_fractions():
    anchors = default_boxes("vgg-16", 300)
    assert anchors.shape == (8732, 4)
    sides = np.sqrt((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1]))
    assert sides.min() == pytest.approx(0.07, abs=1e-3)  # SSD300's first scale (unclipped at the centre)


def test_small_boxes_get_the_layouts_that_fit_them_better():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0.1, 0.9, (200, 2))
    boxes = np.concatenate([centres - 0.035, centres + 0.035], axis=1)  # 0.07 sides: platelet-sized
    advice = better_layouts(boxes, np.zeros(200, np.int64), [0], ("resnet-50", 300))
    assert advice.startswith("use base_network=vgg-16") and "image_shape=300" in advice and "image_shape=512" in advice
    assert better_layouts(boxes, np.zeros(200, np.int64), [0], ("vgg-16", 512)) == ""  # nothing fits better


def test_the_detection_task_gives_the_advisor_per_class_coverage(tmp_path):
    from tests.helpers.detdata import TINY_HP, json_channels

    from smcv.tasks.detection import DetectionTask

    task = DetectionTask()
    hp = task.schema().resolve({**{k: str(v) for k, v in TINY_HP.items()}, "num_training_samples": "10"})
    data = task.prepare_data(hp, json_channels(tmp_path, "train", range(10)), {})
    facts = task.advisor_facts(hp, data)
    assert [c.class_id for c in facts.box_coverage] == [0, 1] and facts.smallest_default_box == 0.1
    assert sum(c.boxes for c in facts.box_coverage) == sum(len(m) for m in data.train.label_maps)
    assert all(0.25 <= c.side_p10 <= c.side_median <= c.side_p90 < 0.5 for c in facts.box_coverage)  # 16-32 px of 64
