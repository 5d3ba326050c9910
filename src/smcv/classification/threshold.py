"""The decision threshold of binary single-label classification: chosen on validation, saved, used by verbose answers.

A request image is class 1 (the positive class) when its class-1 probability is >= the threshold, else class 0.
Multi-class and multi-label models have no threshold (arg-max, and 0.5 per class, as the built-in).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from smcv.errors import ConfigError
from smcv.report import metrics as rm

RULES = ("youden", "sensitivity")
POSITIVE_CLASS = 1
AUTO, NONE = "auto", "none"
Setting = Union[str, float]  # AUTO, NONE or a fixed threshold in (0, 1)


def parse_setting(value: Any) -> Setting:
    """decision_threshold as AUTO, NONE or a number in (0, 1)."""
    text = str(value).strip().lower()
    if text in (AUTO, NONE):
        return text
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if not 0.0 < number < 1.0:
        raise ConfigError(f"decision_threshold={value!r}: use auto (chosen on validation), none (highest probability) "
                          "or a number between 0 and 1, e.g. 0.3")
    return number


def applies(num_classes: int, multi_label: bool) -> bool:
    """Only binary single-label models have a decision threshold."""
    return num_classes == 2 and not multi_label


def choose(scores: np.ndarray, positive: np.ndarray, rule: str, target_sensitivity: float) -> Optional[float]:
    """youden: the score with the highest TPR - FPR (the highest such score on ties); sensitivity: the highest score
    whose sensitivity reaches target_sensitivity. None without both classes in `positive`."""
    positive = np.asarray(positive, bool).ravel()
    n_pos, n_neg = int(positive.sum()), int(positive.size - positive.sum())
    if not n_pos or not n_neg:
        return None
    thresholds, tps, fps = rm.ranked_thresholds(scores, positive)
    tpr, fpr = tps / n_pos, fps / n_neg
    if rule == "youden":
        return float(thresholds[int(np.argmax(tpr - fpr))])
    if rule == "sensitivity":
        return float(thresholds[int(np.argmax(tpr >= target_sensitivity - 1e-12))])
    raise ConfigError(f"threshold_rule={rule!r}: use one of {', '.join(RULES)}")


def operating_point(scores: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, float]:
    """Sensitivity, specificity, balanced accuracy and accuracy when score >= threshold means positive."""
    positive = np.asarray(positive, bool).ravel()
    matrix = rm.confusion(positive, np.asarray(scores, np.float64).ravel() >= threshold, 2)
    sensitivity = matrix[1, 1] / max(matrix[1].sum(), 1)
    specificity = matrix[0, 0] / max(matrix[0].sum(), 1)
    return {"sensitivity": float(sensitivity), "specificity": float(specificity),
            "balanced_accuracy": rm.balanced_accuracy(matrix), "accuracy": float(np.trace(matrix) / max(matrix.sum(), 1))}


def fixed_entry(setting: Setting) -> Optional[dict[str, Any]]:
    """The manifest entry of a fixed threshold (before any validation numbers), None for AUTO and NONE."""
    if isinstance(setting, float):
        return {"value": setting, "rule": "fixed", "positive_class": POSITIVE_CLASS}
    return None


def validated_entry(setting: Setting, rule: str, target_sensitivity: float, probabilities: np.ndarray,
                    labels: np.ndarray) -> Optional[dict[str, Any]]:
    """The manifest entry from the selected model's validation probabilities (N x 2) and class ids; None for NONE
    or when validation lacks one of the classes."""
    if setting == NONE:
        return None
    scores, positive = np.asarray(probabilities)[:, POSITIVE_CLASS], np.asarray(labels) == POSITIVE_CLASS
    value = setting if isinstance(setting, float) else choose(scores, positive, rule, target_sensitivity)
    if value is None:
        return None
    entry: dict[str, Any] = {"value": value, "rule": "fixed" if isinstance(setting, float) else rule,
                             "positive_class": POSITIVE_CLASS}
    if entry["rule"] == "sensitivity":
        entry["target_sensitivity"] = target_sensitivity
    point = operating_point(scores, positive, value)
    entry["validation"] = {k: point[k] for k in ("sensitivity", "specificity", "balanced_accuracy")}
    return entry


def predicted_class(probabilities: list[float], threshold: Optional[float]) -> int:
    """Class 1 when its probability reaches the threshold (binary), else the most probable class."""
    if threshold is not None and len(probabilities) == 2:
        return POSITIVE_CLASS if probabilities[POSITIVE_CLASS] >= threshold else 1 - POSITIVE_CLASS
    return max(range(len(probabilities)), key=lambda i: probabilities[i])
