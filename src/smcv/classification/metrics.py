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

    def update(self, outputs: torch.Tensor, batch: Any) -> None:
        targets = batch[1].to(outputs.device)
        if self.multi_label:
            predicted = (outputs > 0).float()
            self.correct += float((predicted == targets).sum())
            self.total += targets.numel()
            return
        self.correct += float((outputs.argmax(dim=1) == targets).sum())
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
        return [self.correct, self.total, self.topk_correct]

    def merge(self, states: list[list[Any]]) -> None:
        for correct, total, topk in states:
            self.correct += correct
            self.total += total
            self.topk_correct += topk
