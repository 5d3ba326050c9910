"""`smcv evaluate`'s numbers from served answers: IC accuracy/balanced accuracy/AUC, OD mAP, SS mean IoU and Dice."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from smcv.classification import threshold as th
from smcv.detection.metrics import ImageResult, mean_average_precision
from smcv.report import metrics as rm
from smcv.segmentation.metrics import DICE, MIOU, PIXEL_ACCURACY
from smcv.segmentation.metrics import scores as seg_scores

#: the training metric's IoU threshold (validation:mAP, VOC07 11-point)
OD_IOU = 0.5


def classification_scores(probabilities: np.ndarray, labels: np.ndarray,
                          threshold: Optional[float] = None) -> dict[str, Any]:
    """Arg-max accuracy and balanced accuracy, ROC AUC (binary: class 1; else the macro one-vs-rest mean over the
    classes present), and with a binary decision threshold the same at it."""
    probabilities, labels = np.asarray(probabilities, np.float64), np.asarray(labels, np.int64)
    classes = probabilities.shape[1]
    matrix = rm.confusion(labels, probabilities.argmax(axis=1), classes)
    result: dict[str, Any] = {"images": int(len(labels)), "accuracy": float(np.trace(matrix) / max(len(labels), 1)),
                              "balanced_accuracy": rm.balanced_accuracy(matrix), "auc": _auc(probabilities, labels)}
    if threshold is not None and classes == 2:
        result["at_threshold"] = {"threshold": threshold, **th.operating_point(probabilities[:, 1], labels == 1, threshold)}
    return result


def _auc(probabilities: np.ndarray, labels: np.ndarray) -> Optional[float]:
    classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
    curves = [rm.roc_curve(probabilities[:, c], labels == c) for c in classes]
    areas = [c.area for c in curves if c is not None]
    return float(np.mean(areas)) if areas else None


def detection_scores(images: list[ImageResult], num_classes: int) -> dict[str, Any]:
    """VOC07 mAP at IoU 0.5 (the training metric) and COCO mAP@[.5:.95] over the images."""
    result = mean_average_precision(images, num_classes, OD_IOU)
    return {"images": len(images), "mAP": result["mAP"], "mAP_coco": result["mAP_coco"]}


def segmentation_scores(matrix: np.ndarray) -> dict[str, Any]:
    """Mean IoU and pixel accuracy as training computes them (segmentation.metrics.scores), `dice` as training's
    validation:dice (the foreground class for 2 classes), mean Dice over the classes seen, and per-class values."""
    rows = rm.class_scores(matrix)
    dices = [r["dice"] for r in rows if r["dice"] is not None]
    total = int(np.sum(matrix))
    if not total:
        return {"pixels": 0, "mean_iou": None, "dice": None, "mean_dice": None, "pixel_accuracy": None,
                "per_class": [{"class_id": c, "iou": r["iou"], "dice": r["dice"]} for c, r in enumerate(rows)]}
    trained = seg_scores(torch.from_numpy(np.asarray(matrix)))
    return {"pixels": total, "mean_iou": trained[MIOU], "dice": trained[DICE],
            "mean_dice": float(np.mean(dices)) if dices else None, "pixel_accuracy": trained[PIXEL_ACCURACY],
            "per_class": [{"class_id": c, "iou": r["iou"], "dice": r["dice"]} for c, r in enumerate(rows)]}
