"""Validation metrics from one confusion matrix summed over every labelled pixel of the validation set."""

from __future__ import annotations

from typing import Any, Sequence

import torch

from smcv.segmentation.params import IGNORE_INDEX
from smcv.segmentation.transforms import to_original_size
from smcv.task_api import Evaluator

MIOU = "validation:mIOU"
PIXEL_ACCURACY = "validation:pixel_accuracy"
DICE = "validation:dice"
METRIC_NAMES = (MIOU, PIXEL_ACCURACY, DICE)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """C x C counts, rows = true class, columns = predicted class; pixels labelled 255 left out."""
    valid = target != IGNORE_INDEX
    index = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def scores(matrix: torch.Tensor) -> dict[str, float]:
    """mIOU (mean over classes seen in the target or the prediction), pixel accuracy and dice
    (foreground class for 2 classes, else the mean over classes seen)."""
    m = matrix.double()
    tp = m.diag()
    fp = m.sum(0) - tp
    fn = m.sum(1) - tp
    total = m.sum()
    union = tp + fp + fn
    seen = union > 0
    if total == 0 or not seen.any():
        return {MIOU: 0.0, PIXEL_ACCURACY: 0.0, DICE: 0.0}
    iou = tp[seen] / union[seen]
    dice_all = 2 * tp / (2 * tp + fp + fn).clamp(min=1e-12)
    if m.shape[0] == 2:
        dice = float(dice_all[1]) if union[1] > 0 else 1.0  # no foreground anywhere, none predicted: perfect
    else:
        dice = float(dice_all[seen].mean())
    return {MIOU: float(iou.mean()), PIXEL_ACCURACY: float(tp.sum() / total), DICE: dice}


def labels_at_original_size(logits: torch.Tensor, contents: Sequence[tuple[int, int]],
                            sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
    """Class ids per image at its original (height, width): softmax, padding cut off and resized as serving does."""
    probs = torch.softmax(logits.float(), dim=1)
    return [to_original_size(p, content, *size).argmax(0) for p, content, size in zip(probs, contents, sizes)]


class ConfusionEvaluator(Evaluator):
    """Accumulates the confusion matrix; update(predicted class ids, target masks): B,H,W tensors or lists of H,W
    tensors whose sizes differ from image to image."""

    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, outputs: Any, batch: Any) -> None:
        if isinstance(outputs, (list, tuple)):
            for predicted, target in zip(outputs, batch, strict=True):
                self.update(predicted, target)
            return
        counts = confusion_matrix(outputs, batch, self.num_classes)
        if self.matrix.device != counts.device:
            self.matrix = self.matrix.to(counts.device)
        self.matrix += counts

    def compute(self) -> dict[str, float]:
        return scores(self.matrix.cpu())

    def prediction_counts(self) -> list[int]:
        """Labelled validation pixels predicted as each class (the confusion matrix's column sums)."""
        return self.matrix.cpu().sum(dim=0).tolist()

    def state(self) -> list[Any]:
        return [self.matrix.cpu().tolist()]

    def merge(self, states: list[list[Any]]) -> None:
        for state in states:
            for rows in state:
                self.matrix = self.matrix.cpu() + torch.tensor(rows, dtype=torch.int64)
