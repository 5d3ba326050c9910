"""The detection report: per-class precision-recall curves and a grid of validation images with true and
predicted boxes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from smcv.detection.metrics import DetectionEvaluator, ranked_detections, voc07_ap
from smcv.overlays import detection_overlay
from smcv.report import grids, plots
from smcv.report import metrics as rm
from smcv.task_api import Report

PR = "pr_per_class.png"
GRID = "detections_grid.png"
GRID_MIN_SCORE = 0.3  # predicted boxes drawn in the grid (the curves use every detection)
GRID_MAX_BOXES = 20  # per image, best first
PAIRS_PER_ROW = 4


class DetectionReport(Report):
    """Matches every validation detection of the selected model; keeps the first GRID_IMAGES images."""

    def __init__(self, num_classes: int, overlap_threshold: float, class_names: list[str],
                 grid_images: int = grids.GRID_IMAGES) -> None:
        self.evaluator = DetectionEvaluator(num_classes, overlap_threshold)
        self.names, self.overlap, self.limit = list(class_names), overlap_threshold, grid_images
        self.pending: Optional[torch.Tensor] = None
        self.samples: list[tuple[torch.Tensor, dict[str, np.ndarray], dict[str, np.ndarray]]] = []

    def see_batch(self, batch: Any) -> None:
        self.pending = batch[0] if len(self.samples) < self.limit else None

    def update(self, outputs: Any, batch: Any) -> None:
        self.evaluator.update(outputs, batch)
        if self.pending is None:
            return
        for image, det, target in zip(self.pending, outputs, batch):
            if len(self.samples) >= self.limit:
                break
            self.samples.append((image.cpu(), {k: v.float().cpu().numpy() for k, v in det.items()},
                                 {k: target[k].float().cpu().numpy() for k in ("boxes", "labels")}))
        self.pending = None

    def compute(self) -> dict[str, float]:
        return self.evaluator.compute()

    def class_curve(self, label: int) -> tuple[Optional[rm.Curve], np.ndarray]:
        """The class's PR curve over every validation detection (VOC matching), its area the VOC07 AP, and the
        score at each point."""
        accumulator = self.evaluator.accumulator
        positives = int(accumulator.positives[label])
        scores, flags = ranked_detections(accumulator.voc[label])
        if not positives:
            return None, scores
        curve = rm.pr_from_counts(np.cumsum(flags), np.cumsum(~flags), positives)
        return curve._replace(area=voc07_ap(flags, positives)), scores  # the AP of validation:mAP

    def evaluation(self) -> dict[str, Any]:
        result = self.evaluator.accumulator.compute()
        rows = []
        for c, name in enumerate(self.names):
            curve, scores = self.class_curve(c)
            best = rm.best_f1(curve, scores) if curve is not None else {}
            rows.append({"class_id": c, "name": name, "ground_truth": int(self.evaluator.accumulator.positives[c]),
                         "detections": int(len(scores)), "ap": result["per_class"].get(c),
                         "ap_coco": result["per_class_coco"].get(c), **best})
        return {"per_class": rows, "iou_threshold": self.overlap, "grid_min_score": GRID_MIN_SCORE}

    def plots(self) -> dict[str, Callable[[Path], None]]:
        curves = {name: self.class_curve(c)[0] for c, name in enumerate(self.names)}
        drawn: dict[str, Callable[[Path], None]] = {PR: lambda path: plots.class_curves(curves, "pr", path)}
        if self.samples:
            drawn[GRID] = lambda path: grids.save_png(self.grid(), path)
        return drawn

    def grid(self) -> Any:
        """Pairs of tiles (true boxes | predicted boxes with scores), PAIRS_PER_ROW pairs a row."""
        groups = []
        for image, det, target in self.samples:
            picture = grids.fit(grids.to_pil(image))
            height, width = image.shape[-2:]
            scale = np.array([width, height, width, height], np.float64)
            truth = [(int(c), 1.0, list(b / scale)) for c, b in zip(target["labels"], target["boxes"])]
            order = np.argsort(-det["scores"])[:GRID_MAX_BOXES]
            predicted = [(int(det["labels"][i]), float(det["scores"][i]), list(det["boxes"][i] / scale)) for i in order]
            groups.append([detection_overlay(picture, truth, self.names, 0.0, show_scores=False),
                           detection_overlay(picture, predicted, self.names, GRID_MIN_SCORE)])
        return grids.sample_grid(groups, ["true boxes", f"predicted (score >= {GRID_MIN_SCORE})"], PAIRS_PER_ROW)
