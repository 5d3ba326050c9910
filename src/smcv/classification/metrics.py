"""Validation accuracy (and top-k) accumulated over the whole validation set."""

from __future__ import annotations

from typing import Any, Optional

import torch

from smcv.task_api import Evaluator


class AccuracyEvaluator(Evaluator):
    """validation:accuracy (element-wise for multi-label) and, with top_k, validation:top_k_accuracy."""

    def __init__(self, multi_label: bool, top_k: Optional[int]) -> None:
        self.multi_label, self.top_k = multi_label, top_k
        self.correct = 0.0
        self.total = 0.0
        self.topk_correct = 0.0
        self.predicted: Optional[torch.Tensor] = None  # predictions per class (positives for multi-label)

    def _count(self, per_class: torch.Tensor) -> None:
        per_class = per_class.detach().to("cpu", torch.int64)
        self.predicted = per_class if self.predicted is None else self.predicted + per_class

    def update(self, outputs: torch.Tensor, batch: Any) -> None:
        targets = batch[1].to(outputs.device)
        if self.multi_label:
            predicted = (outputs > 0).float()
            self._count(predicted.sum(dim=0))
            self.correct += float((predicted == targets).sum())
            self.total += targets.numel()
            return
        predicted = outputs.argmax(dim=1)
        self.correct += float((predicted == targets).sum())
        self._count(torch.bincount(predicted, minlength=outputs.shape[1]))
        self.total += targets.numel()
        if self.top_k:
            k = min(self.top_k, outputs.shape[1])
            hits = outputs.topk(k, dim=1).indices.eq(targets.unsqueeze(1)).any(dim=1)
            self.topk_correct += float(hits.sum())

    def compute(self) -> dict[str, float]:
        metrics = {"validation:accuracy": self.correct / self.total if self.total else float("nan")}
        if self.top_k and not self.multi_label:
            metrics[f"validation:top_{self.top_k}_accuracy"] = self.topk_correct / self.total if self.total else float("nan")
        return metrics

    def state(self) -> list[Any]:
        return [self.correct, self.total, self.topk_correct, None if self.predicted is None else self.predicted.tolist()]

    def merge(self, states: list[list[Any]]) -> None:
        for correct, total, topk, predicted in states:
            self.correct += correct
            self.total += total
            self.topk_correct += topk
            if predicted is not None:
                self._count(torch.tensor(predicted, dtype=torch.int64))

    def prediction_counts(self) -> Optional[list[int]]:
        """Validation images predicted as each class (multi-label: positive predictions per class)."""
        return None if self.predicted is None else self.predicted.tolist()
