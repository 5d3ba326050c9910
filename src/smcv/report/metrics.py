"""Per-class numbers for the report: calibration, precision/recall/F1, ROC and PR curves, IoU and Dice (numpy).

Zero divisions give 0.0 (a class never predicted has precision 0), except IoU and Dice of a class that is neither
in the targets nor in the predictions: None, as validation:mIOU leaves such classes out.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

CALIBRATION_BINS = 15


class Curve(NamedTuple):
    """One class's curve: x and y points and its area (AUC for ROC, average precision for PR)."""

    x: np.ndarray
    y: np.ndarray
    area: float


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """ECE over equal-width confidence bins ((lower, upper], the first also holds 0): the count-weighted mean
    |accuracy - mean confidence|; and the bins themselves (empty ones have count 0 and no values)."""
    confidence = np.asarray(confidence, np.float64).ravel()
    correct = np.asarray(correct, bool).ravel()
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    table, ece = [], 0.0
    for b in range(bins):
        inside = index == b
        count = int(inside.sum())
        row = {"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count, "confidence": None, "accuracy": None}
        if count:
            row["confidence"], row["accuracy"] = float(confidence[inside].mean()), float(correct[inside].mean())
            ece += count / max(len(confidence), 1) * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return {"ece": float(ece), "bins": table}


def multiclass_calibration(probabilities: np.ndarray, labels: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Calibration of the top-1 class: confidence = highest probability, correct = it is the true class."""
    probabilities = np.asarray(probabilities, np.float64)
    return calibration(probabilities.max(axis=1), probabilities.argmax(axis=1) == np.asarray(labels), bins)


def binary_calibration(probabilities: np.ndarray, targets: np.ndarray, bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """Calibration of independent yes/no decisions (multi-label): confidence = max(p, 1 - p) for every class."""
    p = np.asarray(probabilities, np.float64).ravel()
    return calibration(np.maximum(p, 1.0 - p), (p > 0.5) == (np.asarray(targets).ravel() > 0.5), bins)


def confusion(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """C x C counts, rows = true class, columns = predicted class."""
    index = np.asarray(labels, np.int64) * num_classes + np.asarray(predicted, np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def class_scores(matrix: np.ndarray) -> list[dict[str, Any]]:
    """Per class from a confusion matrix: precision, recall, F1, support, IoU and Dice (None when unseen)."""
    m = np.asarray(matrix, np.float64)
    tp = np.diag(m)
    fp, fn = m.sum(axis=0) - tp, m.sum(axis=1) - tp
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * precision * recall, precision + recall)
    union = tp + fp + fn
    rows = []
    for c in range(len(tp)):
        seen = union[c] > 0
        rows.append({"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                     "support": int(m[c].sum()), "iou": float(tp[c] / union[c]) if seen else None,
                     "dice": float(2 * tp[c] / (2 * tp[c] + fp[c] + fn[c])) if seen else None})
    return rows


def _ranked(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives at each distinct score threshold, highest first."""
    scores = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(positive, bool).ravel()
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1] if len(scores) else np.zeros(0, np.int64)
    tps = np.cumsum(positive)[last]
    return tps, (last + 1) - tps


def ranked_thresholds(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each distinct score, highest first, with the true and false positives among scores >= it."""
    tps, fps = _ranked(scores, positive)
    return np.unique(np.asarray(scores, np.float64).ravel())[::-1], tps, fps


def balanced_accuracy(matrix: np.ndarray) -> float:
    """The mean recall over the classes that have true examples (rows of a confusion matrix)."""
    m = np.asarray(matrix, np.float64)
    support = m.sum(axis=1)
    seen = support > 0
    return float(np.mean(np.diag(m)[seen] / support[seen])) if seen.any() else float("nan")


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> Optional[Curve]:
    """ROC points (false positive rate, true positive rate) from (0, 0) and the area under them; None without
    both positives and negatives."""
    tps, fps = _ranked(scores, positive)
    n_pos, n_neg = int(np.sum(positive)), int(np.size(positive) - np.sum(positive))
    if not n_pos or not n_neg:
        return None
    fpr, tpr = np.r_[0.0, fps / n_neg], np.r_[0.0, tps / n_pos]
    return Curve(fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)))


def pr_curve(scores: np.ndarray, positive: np.ndarray) -> Optional[Curve]:
    """Precision-recall points (recall, precision) per threshold and average precision
    sum((R_n - R_n-1) * P_n) with R_0 = 0; None without positives."""
    tps, fps = _ranked(scores, positive)
    n_pos = int(np.sum(positive))
    if not n_pos:
        return None
    return pr_from_counts(tps, fps, n_pos)


def pr_from_counts(tps: np.ndarray, fps: np.ndarray, positives: int) -> Curve:
    """Precision-recall curve and average precision from cumulative true/false positives in score order."""
    precision = _ratio(tps, tps + fps)
    recall = np.asarray(tps, np.float64) / max(positives, 1)
    return Curve(recall, precision, float(np.sum(np.diff(np.r_[0.0, recall]) * precision)))


def best_f1(curve: Curve, thresholds: np.ndarray) -> dict[str, float]:
    """Precision, recall and F1 where F1 is highest along a PR curve, and the score threshold there."""
    recall, precision = curve.x, curve.y
    if not len(recall):
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "score_threshold": None}
    f1 = _ratio(2 * precision * recall, precision + recall)
    i = int(np.argmax(f1))
    return {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "score_threshold": float(thresholds[i]) if f1[i] > 0 else None}
