"""Each task's Report on hand-made outputs: evaluation.json fields and valid PNG plots."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from smcv.classification.report import ClassificationReport
from smcv.detection.report import DetectionReport
from smcv.segmentation.datasets import Original
from smcv.segmentation.report import SegmentationReport


def assert_pngs(report, tmp_path) -> list[str]:
    names = []
    for name, plot in report.plots().items():
        plot(tmp_path / name)
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.width > 0 and image.height > 0, name
        assert (tmp_path / name).stat().st_size > 0
        names.append(name)
    return names


def test_classification_report_confusion_per_class_and_ece(tmp_path):
    report = ClassificationReport(["cat", "dog", "fox"], multi_label=False, top_k=None)
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.7, 0.1]])
    labels = torch.tensor([0, 1, 1, 2, 2])
    report.update(probs.log(), (None, labels))  # log-probabilities: softmax gives the probabilities back
    result = report.evaluation()
    assert result["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 1, 1]]
    cat, dog, fox = result["per_class"]
    assert (cat["precision"], cat["recall"], cat["support"]) == pytest.approx((0.5, 1.0, 1))
    assert (dog["precision"], dog["recall"], dog["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    assert (fox["precision"], fox["recall"]) == pytest.approx((1.0, 0.5))
    assert cat["roc_auc"] == pytest.approx(1.0) and fox["ap"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 5)
    # confidences .7 .8 .6 .8 .7, correct T T F T F -> bins (.6,.667]: 0 of 1 right, (.667,.733]: 1 of 2 (.7),
    # (.733,.8]: 2 of 2 (.8); ECE = (.6 + 2 * |.5 - .7| + 2 * |1 - .8|) / 5
    assert result["ece"] == pytest.approx((0.6 + 0.4 + 0.4) / 5)
    assert report.compute()["validation:accuracy"] == pytest.approx(3 / 5)
    assert set(assert_pngs(report, tmp_path)) == {"confusion_matrix.png", "roc_per_class.png", "pr_per_class.png",
                                                 "reliability.png"}


def test_multi_label_report_has_per_class_decisions_and_no_confusion_matrix(tmp_path):
    report = ClassificationReport(["a", "b"], multi_label=True, top_k=None)
    logits = torch.tensor([[3.0, -3.0], [3.0, 3.0], [-3.0, 3.0], [-3.0, -3.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    report.update(logits, (None, targets))
    result = report.evaluation()
    assert result["confusion_matrix"] is None and result["multi_label"] is True
    a, b = result["per_class"]
    assert (a["precision"], a["recall"], a["support"]) == pytest.approx((1.0, 2 / 3, 3))
    assert (b["precision"], b["recall"]) == pytest.approx((0.5, 0.5))
    assert 0.0 <= result["ece"] <= 1.0
    assert "confusion_matrix.png" not in assert_pngs(report, tmp_path)


def detections(boxes, scores, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "scores": torch.tensor(scores),
            "labels": torch.tensor(labels, dtype=torch.int64)}


def test_detection_report_per_class_ap_pr_and_grid(tmp_path):
    report = DetectionReport(2, 0.5, ["red", "green"])
    images = torch.full((1, 3, 40, 40), 120, dtype=torch.uint8)
    target = {"boxes": torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]]),
              "labels": torch.tensor([0, 1]), "difficult": torch.tensor([False, False])}
    # red: a hit (0.9) then a miss (0.8); green: one miss (0.6) -> red AP 1, best F1 at 0.9; green AP 0
    output = detections([[0, 0, 10, 10], [30, 0, 40, 10], [0, 30, 10, 40]], [0.9, 0.8, 0.6], [0, 0, 1])
    report.see_batch((images, [target]))
    report.update([output], [target])
    result = report.evaluation()
    red, green = result["per_class"]
    assert red["ap"] == pytest.approx(1.0) and green["ap"] == 0.0
    assert (red["precision"], red["recall"], red["f1"], red["score_threshold"]) == pytest.approx((1.0, 1.0, 1.0, 0.9))
    assert (red["ground_truth"], red["detections"], green["detections"]) == (1, 2, 1)
    assert green["f1"] == 0.0 and green["score_threshold"] is None
    curve, scores = report.class_curve(0)
    assert curve.y.tolist() == pytest.approx([1.0, 0.5]) and scores.tolist() == pytest.approx([0.9, 0.8])
    assert set(assert_pngs(report, tmp_path)) == {"pr_per_class.png", "detections_grid.png"}


def test_segmentation_report_iou_per_class_by_hand(tmp_path):
    report = SegmentationReport(3, ["bg", "cell", "edge"])
    images = torch.zeros((1, 3, 4, 4), dtype=torch.uint8)
    mask = torch.tensor([[0, 0, 1], [1, 1, 255]], dtype=torch.uint8)
    predicted = torch.tensor([[0, 1, 1], [1, 0, 2]])
    report.see_batch((images, torch.full((1, 4, 4), 255, dtype=torch.uint8), [Original(mask, (2, 3))]))
    report.update([predicted], [mask])
    result = report.evaluation()
    # labelled pixels: true 0,0,1,1,1 predicted 0,1,1,1,0 (the 255 pixel is left out)
    assert result["confusion_matrix"] == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]
    bg, cell, edge = result["per_class"]
    assert bg["iou"] == pytest.approx(1 / 3) and cell["iou"] == pytest.approx(2 / 4)
    assert cell["dice"] == pytest.approx(4 / 6) and edge["iou"] is None
    mean_iou = np.mean([r["iou"] for r in result["per_class"] if r["iou"] is not None])
    assert math.isclose(mean_iou, report.compute()["validation:mIOU"])
    assert [tuple(sample[0].shape) for sample in report.samples] == [(3, 2, 3)]  # the image at the mask's size
    assert set(assert_pngs(report, tmp_path)) == {"iou_per_class.png", "segmentation_grid.png"}
