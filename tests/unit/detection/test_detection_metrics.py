"""mAP against hand-worked numbers, difficult boxes, and merging accumulators across ranks."""

from __future__ import annotations

import numpy as np
import pytest

from smcv.detection.metrics import ImageResult, MatchAccumulator, coco_ap, mean_average_precision, voc07_ap


def worked_example() -> list[ImageResult]:
    """Class 0: ground truth g1, g2 in image A and g3 in image B; four detections. Class 1: a detection, no
    ground truth (ignored by the mean). Class 2: ground truth, no detection (AP 0)."""
    a = ImageResult(det_boxes=np.array([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 8, 8]], float),
                    det_scores=np.array([0.9, 0.7, 0.5]), det_labels=np.array([0, 0, 1]),
                    gt_boxes=np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], float),
                    gt_labels=np.array([0, 0, 2]), gt_difficult=np.zeros(3, bool))
    b = ImageResult(det_boxes=np.array([[50, 50, 60, 60], [0, 0, 10, 6.8]], float),
                    det_scores=np.array([0.8, 0.6]), det_labels=np.array([0, 0]),
                    gt_boxes=np.array([[0, 0, 10, 10]], float), gt_labels=np.array([0]), gt_difficult=np.zeros(1, bool))
    return [a, b]


def test_hand_worked_voc07_and_coco():
    # Class 0, by score: d1 0.9 TP (IoU 1 with g1); d2 0.8 FP (no overlap); d3 0.7 FP (g1 already taken);
    # d4 0.6 vs g3: IoU = (10 x 6.8) / (10 x 10) = 0.68 -> TP at IoU 0.5. Three positives.
    # recall 1/3, 1/3, 1/3, 2/3; precision 1, 1/2, 1/3, 1/2.
    # VOC07 11-point: t = 0, .1, .2, .3 -> max precision at recall >= t is 1 (4 points); t = .4, .5, .6 -> 1/2
    # (3 points); t = .7 ... 1 -> 0 (4 points). AP = (4 + 1.5) / 11 = 0.5.
    # COCO: thresholds .50 .55 .60 .65 see the same PR curve; envelope 1, .5, .5, .5; recall points 0 ... .33
    # (34) -> 1, .34 ... .66 (33) -> .5, the rest 0: AP = (34 + 16.5) / 101 = 0.5. Thresholds .70 ... .95 (6): d4
    # is a FP, recall stays 1/3: AP = 34 / 101. Class 0 COCO AP = (4 * 0.5 + 6 * 34 / 101) / 10 = 0.40198.
    # Class 2 has ground truth but no detection: AP 0; class 1 has no ground truth and is left out.
    result = mean_average_precision(worked_example(), num_classes=3, iou_threshold=0.5)
    assert result["per_class"] == {0: pytest.approx(0.5), 2: 0.0}
    assert result["mAP"] == pytest.approx(0.25)
    assert result["mAP_coco"] == pytest.approx((4 * 0.5 + 6 * 34 / 101) / 10 / 2)


def test_overlap_threshold_changes_voc_result():
    # at IoU 0.7, d4 (IoU 0.68) is a FP: recall stays 1/3, precision max 1 up to t = .3: AP = 4 / 11
    result = mean_average_precision(worked_example(), num_classes=3, iou_threshold=0.7)
    assert result["per_class"][0] == pytest.approx(4 / 11)


def test_ap_helpers_on_perfect_and_empty_lists():
    assert voc07_ap(np.array([True, True]), 2) == pytest.approx(1.0)
    assert coco_ap(np.array([True, True]), 2) == pytest.approx(1.0)
    assert voc07_ap(np.array([], bool), 2) == 0.0 and coco_ap(np.array([], bool), 2) == 0.0


def test_difficult_ground_truth_is_neither_found_nor_missed():
    image = ImageResult(np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0.9, 0.8]), np.array([0, 0]),
                        np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float), np.array([0, 0]), np.array([False, True]))
    result = mean_average_precision([image], 1, 0.5)
    assert result["mAP"] == pytest.approx(1.0) and result["mAP_coco"] == pytest.approx(1.0)


def test_merged_states_equal_one_pass():
    images = worked_example()
    whole = MatchAccumulator(3, 0.5)
    for image in images:
        whole.add(image)
    first, second = MatchAccumulator(3, 0.5), MatchAccumulator(3, 0.5)
    first.add(images[0])
    second.add(images[1])
    first.merge(second.state())
    assert first.compute() == whole.compute()
