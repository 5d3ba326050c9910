"""Segmentation class_balance=weights: pixel counts from the training masks, focal-term weights on the criterion."""

from __future__ import annotations

import pytest

from smcv.errors import ConfigError
from smcv.tasks.segmentation import SegmentationTask
from tests.helpers.segdata import TINY_HP, builtin_layout


def prepared(tmp_path, **overrides):
    task = SegmentationTask()
    hp = task.schema().resolve({**TINY_HP, **{k: str(v) for k, v in overrides.items()}})
    channels = builtin_layout(tmp_path / "data", counts=(("train", 4), ("validation", 2)))
    return task, hp, channels, task.prepare_data(hp, channels, {})


def test_weights_from_pixel_counts(tmp_path):
    task, hp, channels, data = prepared(tmp_path / "a", class_balance="weights")
    background, foreground = data.info["class_pixel_counts"]
    assert data.info["class_pixel_counts_masks"] == 4 and background > foreground > 0
    weights = data.info["class_weights"]
    assert weights[1] > 1 > weights[0] and sum(weights) == pytest.approx(2.0)
    assert task.build_model(hp, data, channels).criterion.class_weight.tolist() == pytest.approx(weights)
    facts = task.advisor_facts(hp, data)
    assert facts.balanced and facts.class_counts == [background, foreground] and facts.count_unit.startswith("pixels")


def test_default_is_the_builtin_loss_and_sampling_is_refused(tmp_path):
    task, hp, channels, data = prepared(tmp_path / "b")
    assert "class_weights" not in data.info and task.build_model(hp, data, channels).criterion.class_weight is None
    with pytest.raises(ConfigError, match="'class_balance'"):
        task.schema().resolve({**TINY_HP, "class_balance": "sampling"})
    hp = task.schema().resolve({**TINY_HP, "class_balance": "weights", "focal_loss_weight": "0"})
    with pytest.raises(ConfigError, match="focal_loss_weight above 0"):
        task.train_settings(hp)
