"""The classification report: confusion matrix, ROC and PR per class, reliability diagram with ECE."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from smcv.classification import threshold as th
from smcv.classification.metrics import AccuracyEvaluator
from smcv.report import metrics as rm
from smcv.report import plots
from smcv.task_api import Report

CONFUSION = "confusion_matrix.png"
ROC = "roc_per_class.png"
PR = "pr_per_class.png"
RELIABILITY = "reliability.png"


class ClassificationReport(Report):
    """Keeps every validation probability (N x classes) and target of the selected model."""

    def __init__(self, class_names: list[str], multi_label: bool, top_k: Optional[int],
                 threshold: tuple[th.Setting, str, float] = (th.NONE, "youden", 0.95)) -> None:
        self.names, self.multi_label = list(class_names), multi_label
        self.threshold = threshold  # (decision_threshold, threshold_rule, target_sensitivity)
        self.evaluator = AccuracyEvaluator(multi_label, top_k)
        self.probabilities: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self._arrays: Optional[tuple[np.ndarray, np.ndarray]] = None

    def update(self, outputs: torch.Tensor, batch: Any) -> None:
        self.evaluator.update(outputs, batch)
        logits = outputs.float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, dim=1)
        self.probabilities.append(probs.cpu().numpy())
        self.targets.append(batch[1].cpu().numpy())
        self._arrays = None

    def compute(self) -> dict[str, float]:
        return self.evaluator.compute()

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities N x C, targets: class ids N, or multi-hot N x C)."""
        if self._arrays is None:
            self._arrays = (np.concatenate(self.probabilities), np.concatenate(self.targets))
        return self._arrays

    def positives(self, c: int) -> np.ndarray:
        """Which validation images belong to class c."""
        _, targets = self.arrays()
        return targets[:, c] > 0.5 if self.multi_label else targets == c

    def curves(self, kind: str) -> dict[str, Optional[rm.Curve]]:
        """One-vs-rest ROC (kind 'roc') or PR (kind 'pr') curve per class name."""
        probs, _ = self.arrays()
        make = rm.roc_curve if kind == "roc" else rm.pr_curve
        return {name: make(probs[:, c], self.positives(c)) for c, name in enumerate(self.names)}

    def class_matrices(self) -> list[np.ndarray]:
        """Per class, the 2 x 2 matrix (row/column 1 = the class) of the decision the model makes."""
        probs, targets = self.arrays()
        if self.multi_label:
            return [rm.confusion(targets[:, c] > 0.5, probs[:, c] > 0.5, 2) for c in range(len(self.names))]
        predicted = probs.argmax(axis=1)
        return [rm.confusion(targets == c, predicted == c, 2) for c in range(len(self.names))]

    def calibration(self) -> dict[str, Any]:
        probs, targets = self.arrays()
        if self.multi_label:
            return rm.binary_calibration(probs, targets)
        return rm.multiclass_calibration(probs, targets)

    def confusion_matrix(self) -> Optional[np.ndarray]:
        """Rows true class, columns predicted (single-label only)."""
        if self.multi_label:
            return None
        probs, targets = self.arrays()
        return rm.confusion(targets, probs.argmax(axis=1), len(self.names))

    def decision_threshold(self) -> Optional[dict[str, Any]]:
        """The binary decision threshold's manifest entry from these validation probabilities (None: none)."""
        if not th.applies(len(self.names), self.multi_label):
            return None
        probs, targets = self.arrays()
        return th.validated_entry(*self.threshold, probs, targets)

    def manifest_fields(self) -> dict[str, Any]:
        entry = self.decision_threshold()
        return {"decision_threshold": entry} if entry else {}

    def evaluation(self) -> dict[str, Any]:
        roc, pr = self.curves("roc"), self.curves("pr")
        rows = []
        for c, (name, matrix) in enumerate(zip(self.names, self.class_matrices())):
            scores = rm.class_scores(matrix)[1]
            rows.append({"class_id": c, "name": name, "precision": scores["precision"], "recall": scores["recall"],
                         "f1": scores["f1"], "support": scores["support"],
                         "ap": pr[name].area if pr[name] else None, "roc_auc": roc[name].area if roc[name] else None})
        calibration = self.calibration()
        matrix = self.confusion_matrix()
        return {"per_class": rows, "confusion_matrix": None if matrix is None else matrix.tolist(),
                "ece": calibration["ece"], "calibration_bins": calibration["bins"], "multi_label": self.multi_label,
                "decision": "threshold 0.5 per class" if self.multi_label else "highest probability",
                "decision_threshold": self.decision_threshold()}

    def plots(self) -> dict[str, Callable[[Path], None]]:
        drawn: dict[str, Callable[[Path], None]] = {}
        matrix = self.confusion_matrix()
        if matrix is not None:
            drawn[CONFUSION] = lambda path: plots.confusion_matrix(matrix, self.names, path)
        drawn[ROC] = lambda path: plots.class_curves(self.curves("roc"), "roc", path)
        drawn[PR] = lambda path: plots.class_curves(self.curves("pr"), "pr", path)
        drawn[RELIABILITY] = lambda path: plots.reliability(self.calibration(), path)
        return drawn
