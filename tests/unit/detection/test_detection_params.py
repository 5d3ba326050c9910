"""Detection hyperparameters: the shared engine rules apply to detection too; attribute_names parsing."""

from __future__ import annotations

import pytest

from smcv.detection.params import detection_schema, parse_attribute_names
from smcv.errors import ConfigError
from smcv.tasks.detection import DetectionTask

REQUIRED = {"num_classes": "2", "num_training_samples": "10"}


def test_checkpoint_frequency_above_epochs_is_refused():
    hp = detection_schema().resolve({**REQUIRED, "epochs": "3", "checkpoint_frequency": "5"})
    with pytest.raises(ConfigError, match=r"checkpoint_frequency \(5\) must not exceed epochs \(3\)"):
        DetectionTask().train_settings(hp)


def test_engine_hyperparameters_reach_the_settings():
    hp = detection_schema().resolve({**REQUIRED, "epochs": "4", "checkpoint_frequency": "2", "amp": "0",
                                     "precision_dtype": "float16", "gradient_accumulation_steps": "3"})
    s = DetectionTask().train_settings(hp)
    assert (s.checkpoint_frequency, s.amp, s.precision, s.gradient_accumulation_steps) == (2, False, "float16", 3)
    assert (s.lr_scheduler, s.learning_rate, s.weight_decay) == ("step", 0.001, 0.0005)
    hp = detection_schema().resolve({**REQUIRED, "lr_scheduler": "cosine", "lr_warmup_epochs": "2"})
    assert (DetectionTask().train_settings(hp).lr_scheduler, DetectionTask().train_settings(hp).lr_warmup_epochs) == \
        ("cosine", 2.0)


@pytest.mark.parametrize("value,names", [
    ('["source-ref", "bounding-box"]', ["source-ref", "bounding-box"]),
    ("source-ref, boxes", ["source-ref", "boxes"]),
    ("", None),
])
def test_attribute_names(value, names):
    assert parse_attribute_names(value) == names


@pytest.mark.parametrize("value", ['["source-ref"', "only-one", "[1, 2]"])
def test_bad_attribute_names_say_what_to_write(value):
    with pytest.raises(ConfigError, match="attribute_names"):
        parse_attribute_names(value)


def test_warmup_is_one_epoch_from_scratch_none_with_imagenet_weights_and_settable():
    settings = lambda **hp: DetectionTask().train_settings(detection_schema().resolve({**REQUIRED, **hp}))
    assert settings(use_pretrained_model="0").lr_warmup_epochs == 1.0
    assert settings(use_pretrained_model="1").lr_warmup_epochs == 0.0
    assert settings(use_pretrained_model="0", lr_warmup_epochs="0").lr_warmup_epochs == 0.0
    assert settings(use_pretrained_model="1", lr_warmup_epochs="0.5").lr_warmup_epochs == 0.5
    with pytest.raises(ConfigError, match="lr_warmup_epochs"):
        detection_schema().resolve({**REQUIRED, "lr_warmup_epochs": "-1"})
