"""class_balance for classification: class counts of the training labels, loss weights or per-sample draw weights."""

from __future__ import annotations

import logging
from typing import Any, Optional

from smcv.balance import class_counts, inverse_frequency_weights, sample_weights, spread_indices
from smcv.classification.datasets import ClassificationDataset

log = logging.getLogger(__name__)
#: labels read to count classes (RecordIO reads one record per label); class_balance=sampling reads all
LABEL_SAMPLE = 20_000


def balance_data(dataset: ClassificationDataset, num_classes: int, multi_label: bool,
                 class_balance: str) -> tuple[dict[str, Any], Optional[list[float]]]:
    """Facts for the manifest and the advisor (class_counts, class_weights) and, for sampling, per-sample weights."""
    if multi_label or not len(dataset):
        return {}, None
    indices = range(len(dataset)) if class_balance == "sampling" else spread_indices(len(dataset), LABEL_SAMPLE)
    ids = [dataset.class_id(i) for i in indices]
    counts = class_counts(ids, num_classes)
    info: dict[str, Any] = {"class_counts": counts}
    if len(ids) < len(dataset):
        info["class_counts_sample"] = len(ids)
    if class_balance == "weights":
        info["class_weights"] = inverse_frequency_weights(counts)
        log.info("class_balance=weights: cross-entropy class weights %s", [round(w, 4) for w in info["class_weights"]])
    if class_balance == "sampling":
        log.info("class_balance=sampling: training images drawn with replacement, each class equally often")
        return info, sample_weights(ids, counts)
    return info, None
