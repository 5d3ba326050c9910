"""Report numbers on hand-worked examples: ECE, per-class precision/recall/F1, IoU/Dice, ROC/PR and AP."""

from __future__ import annotations

import numpy as np
import pytest

from smcv.report import metrics as rm


def test_ece_of_top1_confidence_by_hand():
    # confidences 0.85, 0.85 (one right) and 0.55, 0.55 (both right): |0.5 - 0.85| / 2 + |1 - 0.55| / 2 = 0.4
    probs = np.array([[0.85, 0.15], [0.85, 0.15], [0.45, 0.55], [0.55, 0.45]])
    result = rm.multiclass_calibration(probs, np.array([0, 1, 1, 0]), bins=10)
    assert result["ece"] == pytest.approx(0.4)
    filled = [b for b in result["bins"] if b["count"]]
    assert [(b["lower"], b["count"], b["accuracy"]) for b in filled] == [
        (pytest.approx(0.5), 2, 1.0), (pytest.approx(0.8), 2, 0.5)]
    assert filled[1]["confidence"] == pytest.approx(0.85)
    assert sum(b["count"] for b in result["bins"]) == 4


def test_ece_is_zero_when_confidence_matches_accuracy_and_bins_include_their_upper_edge():
    # 0.75 confident four times, right three times; 1.0 lands in the last bin, 0.0 in the first
    assert rm.calibration([0.75] * 4, [1, 1, 1, 0], bins=4)["ece"] == pytest.approx(0.0)
    bins = rm.calibration([0.0, 1.0], [0, 1], bins=4)["bins"]
    assert bins[0]["count"] == 1 and bins[-1]["count"] == 1


def test_binary_calibration_for_multi_label_decisions():
    # p = 0.9 (yes, right), 0.2 (no, confidence 0.8, wrong: it was yes)
    result = rm.binary_calibration(np.array([[0.9, 0.2]]), np.array([[1.0, 1.0]]), bins=10)
    assert result["ece"] == pytest.approx(0.5 * abs(1 - 0.9) + 0.5 * abs(0 - 0.8))


def test_per_class_precision_recall_f1_iou_dice_by_hand():
    matrix = rm.confusion([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    rows = rm.class_scores(matrix)
    expected = [(1 / 2, 1 / 2, 1 / 2, 1 / 3, 1 / 2), (2 / 3, 1.0, 0.8, 2 / 3, 0.8), (1.0, 1 / 2, 2 / 3, 1 / 2, 2 / 3)]
    for row, (precision, recall, f1, iou, dice) in zip(rows, expected):
        assert (row["precision"], row["recall"], row["f1"], row["iou"], row["dice"]) == pytest.approx(
            (precision, recall, f1, iou, dice))
    assert [r["support"] for r in rows] == [2, 2, 2]


def test_a_class_never_seen_has_no_iou_and_zero_precision():
    matrix = np.array([[3, 0], [0, 0]])
    rows = rm.class_scores(matrix)
    assert rows[1]["iou"] is None and rows[1]["dice"] is None
    assert (rows[1]["precision"], rows[1]["recall"], rows[1]["f1"]) == (0.0, 0.0, 0.0)
    assert rows[0]["iou"] == 1.0


def test_pr_curve_and_average_precision_by_hand():
    # ranked: +, -, +, -  -> recall .5 .5 1 1, precision 1 .5 .667 .5; AP = .5 * 1 + .5 * 2/3
    curve = rm.pr_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    assert curve.x.tolist() == pytest.approx([0.5, 0.5, 1.0, 1.0])
    assert curve.y.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    assert curve.area == pytest.approx(0.5 + 1 / 3)
    assert rm.pr_curve(np.array([0.3, 0.2]), np.array([0, 0])) is None


def test_roc_curve_and_auc_by_hand_with_ties():
    curve = rm.roc_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    assert curve.x.tolist() == pytest.approx([0, 0, 0.5, 0.5, 1])
    assert curve.y.tolist() == pytest.approx([0, 0.5, 0.5, 1, 1])
    assert curve.area == pytest.approx(0.75)
    tied = rm.roc_curve(np.array([0.5, 0.5]), np.array([1, 0]))  # one threshold: straight to (1, 1)
    assert tied.area == pytest.approx(0.5) and len(tied.x) == 2
    assert rm.roc_curve(np.array([0.5, 0.4]), np.array([1, 1])) is None


def test_best_f1_point_and_its_score_threshold():
    curve = rm.pr_curve(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0]))
    best = rm.best_f1(curve, np.array([0.9, 0.8, 0.7, 0.6]))
    assert best["f1"] == pytest.approx(0.8) and best["score_threshold"] == 0.7
    assert best["precision"] == pytest.approx(2 / 3) and best["recall"] == 1.0
