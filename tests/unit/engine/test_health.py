"""Training-health rules on synthetic series: each fires once, with its stable tag, only when its condition holds."""

from __future__ import annotations

import math

import pytest

from smcv.engine import health
from smcv.engine.health import HealthMonitor, loss_not_decreasing, overfitting


def monitor():
    reports: list[tuple[str, str]] = []
    return HealthMonitor(lambda rule, message: reports.append((rule, message)), interval_steps=50), reports


def test_loss_not_decreasing_compares_the_last_window_with_the_one_before():
    falling = [1.0 - 0.05 * i for i in range(10)]
    assert loss_not_decreasing(falling, window=5) is None
    flat = [0.7, 0.71, 0.69, 0.7, 0.7, 0.7, 0.69, 0.71, 0.7, 0.7]
    previous, last = loss_not_decreasing(flat, window=5)
    assert previous == pytest.approx(0.7) and last == pytest.approx(0.7)
    assert loss_not_decreasing(flat[:9], window=5) is None  # not enough intervals yet
    assert loss_not_decreasing([1.0, float("nan")] + falling, window=5) is None  # NaN intervals are skipped


def test_stalled_loss_fires_loss_not_decreasing_once():
    m, reports = monitor()
    for _ in range(2 * health.LOSS_WINDOW_INTERVALS + 3):
        m.interval(0.6931)
    assert [rule for rule, _ in reports] == ["LossNotDecreasing"]
    assert "learning_rate" in reports[0][1] and "intervals of 50 steps" in reports[0][1]


def test_a_learning_run_fires_nothing():
    m, reports = monitor()
    for i in range(30):
        m.interval(2.0 * 0.9 ** i)
        m.gradients(1.5)
    for epoch in range(8):
        m.epoch(1.0 - 0.1 * epoch, 1.1 - 0.1 * epoch)
        m.predictions([5, 3, 2], ["a", "b", "c"], final=epoch == 7)
        m.data_wait(0.05, epoch + 1)
    assert reports == []


@pytest.mark.parametrize("norm, rule", [(5e3, "ExplodingGradient"), (float("inf"), "ExplodingGradient"),
                                        (float("nan"), "ExplodingGradient"), (1e-9, "VanishingGradient")])
def test_gradient_norm_bounds(norm, rule):
    m, reports = monitor()
    m.gradients(1.0)
    m.gradients(norm)
    m.gradients(norm)
    assert [r for r, _ in reports] == [rule]


def test_nonfinite_loss_is_listed_with_advice():
    m, reports = monitor()
    m.nonfinite_loss(math.nan, 2, 17)
    assert reports[0][0] == "NonFiniteLoss" and "epoch 2, step 17" in reports[0][1] and "learning_rate" in reports[0][1]


def test_overfitting_needs_rising_validation_and_falling_training_loss():
    train = [1.0, 0.8, 0.6, 0.5, 0.4]
    assert overfitting(train, [0.9, 0.7, 0.75, 0.8, 0.9])
    assert not overfitting(train, [0.9, 0.7, 0.75, 0.74, 0.9])  # not rising in each of the last 3 epochs
    assert not overfitting([1.0, 0.8, 0.6, 0.7, 0.4], [0.9, 0.7, 0.75, 0.8, 0.9])  # training loss not falling each epoch
    assert not overfitting(train[:3], [0.9, 1.0, 1.1])  # too few epochs
    m, reports = monitor()
    for t, v in zip(train, [0.9, 0.7, 0.75, 0.8, 0.9]):
        m.epoch(t, v)
    assert [r for r, _ in reports] == ["Overfitting"] and "early_stopping=1" in reports[0][1]
    m.epoch(0.3, None)  # no validation: ignored


def test_class_never_predicted_after_several_passes_or_never_in_a_short_job():
    m, reports = monitor()
    for _ in range(health.NEVER_PREDICTED_EPOCHS - 1):
        m.predictions([10, 0], ["cat", "dog"], final=False)
    assert reports == []
    m.predictions([10, 0], ["cat", "dog"], final=False)
    assert reports[0][0] == "ClassNeverPredicted" and "1 (dog)" in reports[0][1]
    short, reports = monitor()
    short.predictions([10, 0], ["cat", "dog"], final=False)
    short.predictions([10, 0], ["cat", "dog"], final=True)
    assert [r for r, _ in reports] == ["ClassNeverPredicted"]
    once, reports = monitor()
    once.predictions([0, 10], ["cat", "dog"], final=False)
    once.predictions([10, 0], ["cat", "dog"], final=True)  # each class was predicted at some point
    once.predictions(None, [], final=True)
    assert reports == []


def test_data_wait_above_half_an_epoch():
    m, reports = monitor()
    m.data_wait(0.3, 2)
    assert reports == []
    m.data_wait(0.8, 3)
    assert reports[0][0] == "DataWait" and "80%" in reports[0][1] and "num_workers" in reports[0][1]
