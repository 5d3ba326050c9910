"""The 'model saved' log line names the selected epoch, the epochs run and the metric that chose it."""

from __future__ import annotations

from smcv.engine.loop import FitResult
from smcv.train import selection_summary


def result(selected: int, completed: int, metrics: dict) -> FitResult:
    return FitResult(state_dict={}, epochs_completed=completed, selected_epoch=selected, metrics=metrics)


def test_best_epoch_and_its_metric():
    text = selection_summary(result(9, 10, {"validation:mAP": 0.94123, "train:loss": 2.0}), "validation:mAP")
    assert text == "best epoch 9 of 10; validation:mAP=0.9412"


def test_without_the_objective_the_last_epoch_is_named():
    text = selection_summary(result(2, 2, {"train:loss": 0.3}), "validation:accuracy")
    assert text == "epoch 2 of 2, the last; no validation:accuracy to choose by"


def test_a_non_finite_objective_does_not_count_as_best():
    assert selection_summary(result(3, 3, {"validation:mIOU": float("nan")}), "validation:mIOU").startswith("epoch 3 of 3, the last")
