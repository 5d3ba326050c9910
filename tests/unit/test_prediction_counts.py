"""Per-class prediction counts of the three evaluators (ClassNeverPredicted), merged across ranks."""

from __future__ import annotations

import numpy as np
import torch

from smcv.classification.metrics import AccuracyEvaluator
from smcv.detection.metrics import DetectionEvaluator
from smcv.segmentation.metrics import ConfusionEvaluator


def test_classification_counts_argmax_and_merges():
    evaluator, other = AccuracyEvaluator(False, None), AccuracyEvaluator(False, None)
    assert evaluator.prediction_counts() is None
    evaluator.update(torch.tensor([[3.0, 1.0, 0.0], [2.0, 1.0, 0.0]]), (None, torch.tensor([0, 1])))
    other.update(torch.tensor([[0.0, 3.0, 1.0]]), (None, torch.tensor([1])))
    evaluator.merge([other.state()])
    assert evaluator.prediction_counts() == [2, 1, 0]
    multi = AccuracyEvaluator(True, None)
    multi.update(torch.tensor([[1.0, -1.0, 2.0], [1.0, -1.0, -2.0]]), (None, torch.ones(2, 3)))
    assert multi.prediction_counts() == [2, 0, 1]


def test_segmentation_counts_predicted_pixels():
    evaluator = ConfusionEvaluator(3)
    evaluator.update(torch.tensor([[[0, 0], [1, 0]]]), torch.tensor([[[0, 1], [1, 255]]]))
    assert evaluator.prediction_counts() == [2, 1, 0]  # the ignored pixel is not counted


def test_detection_counts_confident_detections():
    evaluator = DetectionEvaluator(2, 0.5)
    det = {"boxes": torch.tensor([[0.0, 0, 10, 10], [0, 0, 5, 5]]), "scores": torch.tensor([0.9, 0.1]),
           "labels": torch.tensor([1, 0])}
    target = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([1]), "difficult": torch.tensor([False])}
    evaluator.update([det], [target])
    other = DetectionEvaluator(2, 0.5)
    other.update([det], [target])
    evaluator.merge([other.state()])
    assert evaluator.prediction_counts() == [0, 2]
    assert np.isclose(evaluator.compute()["validation:mAP"], 1.0)
