"""The binary decision threshold: Youden's J and the target-sensitivity rule on hand-worked sets, the manifest entry
from the report pass, the hyperparameter checks, and verbose answers that follow it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from smcv.classification import threshold as th
from smcv.classification.predictor import JSON, JSON_VERBOSE, ClassificationPredictor
from smcv.classification.report import ClassificationReport
from smcv.errors import ConfigError
from smcv.serving.codecs import ResponseOptions
from smcv.tasks import get_task

# class-1 probabilities and labels, worked by hand (positive when p >= t; 4 positives, 3 negatives):
#   t     0.95  0.8   0.7   0.55  0.5   0.3   0.1
#   TPR   1/4   2/4   2/4   3/4   4/4   4/4   4/4
#   FPR   0     0     1/3   1/3   1/3   2/3   3/3
#   J     .25   .5    .167  .417  .667  .333  0     -> Youden picks 0.5
SCORES = np.array([0.95, 0.8, 0.7, 0.55, 0.5, 0.3, 0.1])
LABELS = np.array([1, 1, 0, 1, 1, 0, 0])


def test_youden_picks_the_largest_tpr_minus_fpr():
    assert th.choose(SCORES, LABELS == 1, "youden", 0.95) == 0.5


def test_sensitivity_rule_picks_the_highest_threshold_reaching_the_target():
    assert th.choose(SCORES, LABELS == 1, "sensitivity", 0.7) == 0.55  # TPR 3/4 >= 0.7; 0.7 gives only 2/4
    assert th.choose(SCORES, LABELS == 1, "sensitivity", 0.75) == 0.55  # exactly reached counts
    assert th.choose(SCORES, LABELS == 1, "sensitivity", 0.95) == 0.5


def test_no_threshold_without_both_classes():
    assert th.choose(SCORES, np.ones(7, bool), "youden", 0.95) is None


def test_operating_point_at_the_youden_threshold():
    point = th.operating_point(SCORES, LABELS == 1, 0.5)
    assert point["sensitivity"] == 1.0 and point["specificity"] == pytest.approx(2 / 3)
    assert point["balanced_accuracy"] == pytest.approx(5 / 6) and point["accuracy"] == pytest.approx(6 / 7)


def _report(names, probabilities, labels, setting="auto", rule="youden", target=0.95) -> ClassificationReport:
    report = ClassificationReport(names, False, None, (th.parse_setting(setting), rule, target))
    logits = torch.log(torch.tensor(probabilities, dtype=torch.float32))  # softmax(log p) = p
    report.update(logits, (None, torch.tensor(labels)))
    return report


def test_report_gives_the_manifest_entry_for_a_binary_model():
    probabilities = np.stack([1 - SCORES, SCORES], axis=1)
    entry = _report(["normal", "pneumonia"], probabilities, LABELS).manifest_fields()["decision_threshold"]
    assert entry["value"] == pytest.approx(0.5) and entry["rule"] == "youden" and entry["positive_class"] == 1
    assert entry["validation"]["balanced_accuracy"] == pytest.approx(5 / 6)
    fixed = _report(["a", "b"], probabilities, LABELS, setting="0.3").manifest_fields()["decision_threshold"]
    assert fixed["value"] == 0.3 and fixed["rule"] == "fixed" and fixed["validation"]["sensitivity"] == 1.0
    assert _report(["a", "b"], probabilities, LABELS, setting="none").manifest_fields() == {}


def test_multi_class_has_no_threshold():
    probabilities = [[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]]
    report = _report(["a", "b", "c"], probabilities, [0, 1, 2])
    assert report.manifest_fields() == {} and report.evaluation()["decision_threshold"] is None


@pytest.mark.parametrize("value", ["0", "1", "1.5", "youden", ""])
def test_bad_decision_threshold_says_what_to_use(value):
    with pytest.raises(ConfigError, match="auto .* none .* number between 0 and 1"):
        th.parse_setting(value)


def test_fixed_threshold_needs_a_binary_single_label_job():
    task = get_task("classification")
    hp = task.schema().resolve({"num_classes": "3", "num_training_samples": "6", "decision_threshold": "0.3"})
    with pytest.raises(ConfigError, match="binary single-label"):
        task.train_settings(hp)


def _predictor(threshold):
    return ClassificationPredictor(torch.nn.Identity(), None, None, "RGB", False, ["normal", "pneumonia"],
                                   torch.device("cpu"), decision_threshold=threshold)


def test_verbose_label_follows_the_threshold_and_the_plain_list_does_not_change():
    result = [0.7, 0.3]
    verbose = json.loads(_predictor(0.25).encode(result, {"options": ResponseOptions()}, JSON_VERBOSE))
    assert verbose["predicted_label"] == "pneumonia" and verbose["decision_threshold"] == 0.25
    assert [t["label"] for t in verbose["top_k"]] == ["normal", "pneumonia"]  # top_k still by probability
    assert json.loads(_predictor(0.25).encode(result, {}, JSON)) == result
    without = json.loads(_predictor(None).encode(result, {"options": ResponseOptions()}, JSON_VERBOSE))
    assert without["predicted_label"] == "normal" and "decision_threshold" not in without
