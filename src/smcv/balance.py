"""Class-balance weights from class counts (the class_balance hyperparameter of classification and segmentation)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: values of class_balance: none (the built-in's behaviour), weights (inverse-frequency loss weights), sampling
CLASS_BALANCE = ("none", "weights", "sampling")


def spread_indices(length: int, limit: int) -> list[int]:
    """All indices 0..length-1, or `limit` of them spread evenly over the range."""
    if length <= limit:
        return list(range(length))
    return sorted(set(np.linspace(0, length - 1, num=limit).astype(int).tolist()))


def class_counts(class_ids: Sequence[int], num_classes: int) -> list[int]:
    """How many of `class_ids` fall in each class 0..num_classes-1."""
    return np.bincount(np.asarray(class_ids, dtype=np.int64), minlength=num_classes)[:num_classes].tolist()


def inverse_frequency_weights(counts: Sequence[float]) -> list[float]:
    """Per class 1/count, normalised to a mean of 1 over the classes present; absent classes get 1."""
    values = np.asarray(counts, dtype=np.float64)
    present = values > 0
    if not present.any():
        return [1.0] * len(values)
    weights = np.ones_like(values)
    weights[present] = 1.0 / values[present]
    weights[present] /= weights[present].mean()
    return weights.tolist()


def sample_weights(class_ids: Sequence[int], counts: Sequence[int]) -> list[float]:
    """Per sample 1/(count of its class): every class is drawn equally often in expectation."""
    return [1.0 / max(counts[c], 1) for c in class_ids]
