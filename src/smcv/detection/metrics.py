"""Detection metrics over a whole validation set: VOC07 11-point mAP at one IoU, and COCO-style mAP@[.5:.95].

VOC (validation:mAP): per class, detections of all images sorted by score; each is a true positive when its
best-overlapping ground truth of that class has IoU >= the threshold and is not yet taken (a taken one makes it a
false positive); a best match that is 'difficult' makes the detection count as neither. AP is the mean over recall
points 0, 0.1, ..., 1 of the highest precision at that recall or above (PASCAL VOC 2007 11-point, as the MXNet SSD
the built-in derives from). mAP averages the classes that have (non-difficult) ground truth.

COCO (validation:mAP_coco): IoU thresholds 0.50:0.05:0.95; per image and class at most 100 detections by score,
each matched to the best still-unmatched ground truth with IoU >= the threshold (difficult ones act like COCO's
crowd boxes: matches to them are ignored); precision made monotone and sampled at 101 recall points; averaged over
classes with ground truth, then over thresholds. No area ranges.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from smcv.task_api import Evaluator

COCO_THRESHOLDS = np.linspace(0.5, 0.95, 10)
COCO_RECALLS = np.linspace(0.0, 1.0, 101)
COCO_MAX_DETECTIONS = 100
#: a detection counts as a prediction of its class (prediction_counts) from this score on
PREDICTED_SCORE = 0.5


class ImageResult(NamedTuple):
    """Detections and ground truth of one image (any consistent coordinate units)."""

    det_boxes: np.ndarray
    det_scores: np.ndarray
    det_labels: np.ndarray
    gt_boxes: np.ndarray
    gt_labels: np.ndarray
    gt_difficult: np.ndarray


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m) IoU of XYXY boxes."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def voc_match(iou: np.ndarray, difficult: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(true positive, ignored) per detection (rows in descending score order) against one class's ground truth."""
    n = iou.shape[0]
    tp, ignored = np.zeros(n, bool), np.zeros(n, bool)
    if not n or not iou.shape[1]:
        return tp, ignored
    best = iou.argmax(axis=1)
    hit = iou[np.arange(n), best] >= threshold
    ignored = hit & difficult[best]
    candidates = np.flatnonzero(hit & ~ignored)
    _, first = np.unique(best[candidates], return_index=True)  # the highest-scoring hit takes each box
    tp[candidates[first]] = True
    return tp, ignored


def coco_match(iou: np.ndarray, difficult: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """COCO greedy matching: each detection takes the best unmatched ordinary box, else the best difficult one."""
    n = iou.shape[0]
    tp, ignored = np.zeros(n, bool), np.zeros(n, bool)
    if not n or not iou.shape[1]:
        return tp, ignored
    limit = min(threshold, 1 - 1e-10)
    taken = np.zeros(iou.shape[1], bool)
    for d in np.flatnonzero(iou.max(axis=1) >= limit):
        row = iou[d]
        usable = (row >= limit) & ~(taken & ~difficult)
        ordinary = usable & ~difficult
        pool = ordinary if ordinary.any() else usable
        if not pool.any():
            continue
        g = int(np.argmax(np.where(pool, row, -1.0)))
        if difficult[g]:
            ignored[d] = True
        else:
            tp[d], taken[g] = True, True
    return tp, ignored


def voc07_ap(flags: np.ndarray, positives: int) -> float:
    """11-point interpolated AP (PASCAL VOC 2007) of detections in descending score order."""
    precision, recall = _precision_recall(flags, positives)
    points = [precision[recall >= t].max() if np.any(recall >= t) else 0.0 for t in np.linspace(0, 1, 11)]
    return float(np.mean(points))


def coco_ap(flags: np.ndarray, positives: int) -> float:
    """101-point interpolated AP with a monotone precision envelope (COCO)."""
    precision, recall = _precision_recall(flags, positives)
    if not len(precision):
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, COCO_RECALLS, side="left")
    return float(np.mean(np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0)))


def _precision_recall(flags: np.ndarray, positives: int) -> tuple[np.ndarray, np.ndarray]:
    flags = np.asarray(flags, bool)
    tp = np.cumsum(flags)
    fp = np.cumsum(~flags)
    return tp / np.maximum(tp + fp, 1e-12), tp / max(positives, 1)


class MatchAccumulator:
    """Matches each image as it arrives and keeps only (score, true positive) per detection and class."""

    def __init__(self, num_classes: int, iou_threshold: float) -> None:
        self.num_classes, self.iou_threshold = num_classes, iou_threshold
        self.positives = np.zeros(num_classes, np.int64)
        self.predicted = np.zeros(num_classes, np.int64)  # detections per class with score >= PREDICTED_SCORE
        self.voc: list[list] = [[] for _ in range(num_classes)]
        self.coco: list[list[list]] = [[[] for _ in COCO_THRESHOLDS] for _ in range(num_classes)]

    def add(self, image: ImageResult) -> None:
        """Match one image's detections to its ground truth, class by class."""
        gt_labels = np.asarray(image.gt_labels, np.int64)
        det_labels = np.asarray(image.det_labels, np.int64)
        confident = np.asarray(image.det_scores, np.float64) >= PREDICTED_SCORE
        known = det_labels[confident & (det_labels >= 0) & (det_labels < self.num_classes)]
        self.predicted += np.bincount(known, minlength=self.num_classes)
        for label in np.union1d(gt_labels, det_labels):
            if not 0 <= label < self.num_classes:
                continue
            gt = gt_labels == label
            gt_boxes, difficult = np.asarray(image.gt_boxes)[gt], np.asarray(image.gt_difficult, bool)[gt]
            self.positives[label] += int((~difficult).sum())
            det = np.flatnonzero(det_labels == label)
            scores = np.asarray(image.det_scores, np.float64)[det]
            det = det[np.argsort(-scores, kind="stable")]
            scores = np.asarray(image.det_scores, np.float64)[det]
            iou = box_iou(np.asarray(image.det_boxes)[det], gt_boxes)
            tp, ignored = voc_match(iou, difficult, self.iou_threshold)
            self.voc[label].append((scores[~ignored], tp[~ignored]))
            top = slice(0, COCO_MAX_DETECTIONS)
            for t, threshold in enumerate(COCO_THRESHOLDS):
                tp, ignored = coco_match(iou[top], difficult, threshold)
                self.coco[label][t].append((scores[top][~ignored], tp[~ignored]))

    def state(self) -> list[Any]:
        """Picklable state for gathering across ranks."""
        return [self.positives.tolist(), self.voc, self.coco, self.predicted.tolist()]

    def merge(self, state: list[Any]) -> None:
        """Add another accumulator's state."""
        positives, voc, coco, predicted = state
        self.positives += np.asarray(positives, np.int64)
        self.predicted += np.asarray(predicted, np.int64)
        for label in range(self.num_classes):
            self.voc[label].extend(voc[label])
            for t in range(len(COCO_THRESHOLDS)):
                self.coco[label][t].extend(coco[label][t])

    def compute(self) -> dict[str, Any]:
        """{'mAP': VOC07 mAP, 'mAP_coco': COCO mAP@[.5:.95], 'per_class': {class: VOC AP}} over classes with ground truth."""
        voc, coco = {}, {}
        for label in range(self.num_classes):
            positives = int(self.positives[label])
            if positives == 0:
                continue
            voc[label] = voc07_ap(ranked_detections(self.voc[label])[1], positives)
            coco[label] = float(np.mean([coco_ap(ranked_detections(parts)[1], positives) for parts in self.coco[label]]))
        return {"mAP": float(np.mean(list(voc.values()))) if voc else 0.0,
                "mAP_coco": float(np.mean(list(coco.values()))) if coco else 0.0, "per_class": voc,
                "per_class_coco": coco}


def ranked_detections(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, true-positive flags) of one class's matched detections over all images, highest score first."""
    if not parts:
        return np.zeros(0), np.zeros(0, bool)
    scores = np.concatenate([p[0] for p in parts])
    order = np.argsort(-scores, kind="stable")
    return scores[order], np.concatenate([p[1] for p in parts])[order]


def mean_average_precision(images: list[ImageResult], num_classes: int, iou_threshold: float) -> dict[str, Any]:
    """VOC07 mAP at iou_threshold and COCO mAP@[.5:.95] over a list of images."""
    accumulator = MatchAccumulator(num_classes, iou_threshold)
    for image in images:
        accumulator.add(image)
    return accumulator.compute()


class DetectionEvaluator(Evaluator):
    """VOC07 mAP at overlap_threshold and COCO mAP@[.5:.95], accumulated over the validation set."""

    def __init__(self, num_classes: int, overlap_threshold: float) -> None:
        self.accumulator = MatchAccumulator(num_classes, overlap_threshold)

    def update(self, outputs: Any, batch: Any) -> None:
        for det, target in zip(outputs, batch):
            self.accumulator.add(ImageResult(
                det["boxes"].float().cpu().numpy(), det["scores"].float().cpu().numpy(), det["labels"].cpu().numpy(),
                target["boxes"].float().cpu().numpy(), target["labels"].cpu().numpy(), target["difficult"].cpu().numpy()))

    def compute(self) -> dict[str, float]:
        result = self.accumulator.compute()
        return {"validation:mAP": result["mAP"], "validation:mAP_coco": result["mAP_coco"]}

    def state(self) -> list[Any]:
        return self.accumulator.state()

    def prediction_counts(self) -> list[int]:
        """Validation detections with score >= PREDICTED_SCORE (after NMS) per class id."""
        return self.accumulator.predicted.tolist()

    def merge(self, states: list[list[Any]]) -> None:
        for state in states:
            self.accumulator.merge(state)
