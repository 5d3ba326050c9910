"""The segmentation report: per-class IoU (and Dice) bars and a grid of validation overlays
(image | true mask | predicted mask)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

from smcv.overlays import segmentation_overlay
from smcv.report import grids, plots
from smcv.report import metrics as rm
from smcv.segmentation.datasets import Original
from smcv.segmentation.metrics import ConfusionEvaluator
from smcv.segmentation.predictor import mask_png
from smcv.task_api import Report

IOU = "iou_per_class.png"
GRID = "segmentation_grid.png"
TRIPLETS_PER_ROW = 2


class SegmentationReport(Report):
    """The pixel confusion matrix of the selected model; keeps the first GRID_IMAGES (image, mask, prediction)."""

    def __init__(self, num_classes: int, class_names: list[str], grid_images: int = grids.GRID_IMAGES) -> None:
        self.evaluator = ConfusionEvaluator(num_classes)
        self.names, self.limit = list(class_names), grid_images
        self.pending: Optional[tuple[torch.Tensor, list[Original]]] = None
        self.samples: list[tuple[torch.Tensor, np.ndarray, np.ndarray]] = []

    def see_batch(self, batch: Any) -> None:
        self.pending = (batch[0], batch[2]) if len(self.samples) < self.limit else None

    def update(self, outputs: Any, batch: Any) -> None:
        """outputs and batch: predicted and true masks at each image's original size (lists of H,W tensors)."""
        self.evaluator.update(outputs, batch)
        if self.pending is None:
            return
        for image, original, predicted in zip(*self.pending, outputs):
            if len(self.samples) >= self.limit:
                break
            height, width = original.mask.shape
            picture = F.resize(image[:, : original.content[0], : original.content[1]], [height, width], antialias=True)
            self.samples.append((picture.cpu(), original.mask.cpu().numpy(), predicted.cpu().numpy()))
        self.pending = None

    def compute(self) -> dict[str, float]:
        return self.evaluator.compute()

    def matrix(self) -> np.ndarray:
        """Pixel counts, rows true class, columns predicted (unlabelled pixels left out)."""
        return self.evaluator.matrix.cpu().numpy()

    def evaluation(self) -> dict[str, Any]:
        scores = rm.class_scores(self.matrix())
        rows = [{"class_id": c, "name": name, "iou": s["iou"], "dice": s["dice"], "precision": s["precision"],
                 "recall": s["recall"], "f1": s["f1"], "pixels": s["support"]}
                for c, (name, s) in enumerate(zip(self.names, scores))]
        return {"per_class": rows, "confusion_matrix": self.matrix().tolist(), "confusion_unit": "pixels"}

    def plots(self) -> dict[str, Callable[[Path], None]]:
        ious = [s["iou"] for s in rm.class_scores(self.matrix())]
        drawn: dict[str, Callable[[Path], None]] = {IOU: lambda path: plots.class_bars(self.names, ious, "IoU", path)}
        if self.samples:
            drawn[GRID] = lambda path: grids.save_png(self.grid(), path)
        return drawn

    def grid(self) -> Any:
        """Triplets (image | true mask | predicted mask) of the first validation images, TRIPLETS_PER_ROW a row."""
        groups = []
        for image, mask, predicted in self.samples:
            picture = grids.fit(grids.to_pil(image))
            groups.append([picture, segmentation_overlay(picture, mask_png(mask)),
                           segmentation_overlay(picture, mask_png(predicted))])
        return grids.sample_grid(groups, ["image", "true mask", "predicted mask"], TRIPLETS_PER_ROW)
