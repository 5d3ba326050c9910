"""The report's plumbing: training curves, failure isolation, JSON cleaning, and a job without validation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from smcv.engine.loop import FitResult
from smcv.report import plots
from smcv.report.card import describe_start, model_card
from smcv.report.job import TrainedJob
from smcv.report.run import draw, jsonable, write_report
from smcv.task_api import PreparedData
from smcv.tasks import get_task

HISTORY = [{"epoch": 1, "train:loss": 1.0, "train:throughput": 9.0}, {"epoch": 2, "train:loss": 0.5}]


def test_training_curves_png_and_no_epoch_is_an_error(tmp_path):
    plots.training_curves(HISTORY + [{"epoch": 3, "train:loss": 0.4, "partial": 1.0}], "validation:accuracy",
                          tmp_path / "c.png")
    with Image.open(tmp_path / "c.png") as image:
        assert image.format == "PNG" and image.width > 0
    with pytest.raises(ValueError, match="no finished epoch"):
        plots.training_curves([], "validation:accuracy", tmp_path / "none.png")


def test_draw_keeps_going_after_a_failing_plot(tmp_path):
    def broken(path: Path) -> None:
        raise OSError("disk full")

    written, failed = draw({"a.png": broken, "b.png": lambda p: p.write_bytes(b"x")}, tmp_path)
    assert written == ["b.png"] and failed == {"a.png": "OSError: disk full"} and (tmp_path / "b.png").exists()


def test_jsonable_turns_non_finite_numbers_into_null():
    cleaned = jsonable({"a": float("nan"), "b": [math.inf, 1.5], "c": torch.tensor(2.0), 3: (1, None)})
    assert cleaned == {"a": None, "b": [None, 1.5], "c": 2.0, "3": [1, None]}
    json.dumps(cleaned, allow_nan=False)


def job_without_validation() -> TrainedJob:
    task = get_task("classification")
    hp = task.schema().resolve({"num_classes": "2", "num_training_samples": "4", "image_shape": "1,16,16"})
    data = PreparedData(train=[0] * 4, validation=None, class_names=["a", "b"])
    result = FitResult({}, 2, 2, {"train:loss": 0.5}, history=HISTORY)
    return TrainedJob(task, hp, task.train_settings(hp), data, torch.nn.Linear(1, 1), result, torch.device("cpu"))


def test_without_validation_only_the_training_curves_and_no_per_class_part(tmp_path):
    job = job_without_validation()
    assert write_report(job, tmp_path, tmp_path / "evaluation.json") == ["training_curves.png"]
    result = json.loads((tmp_path / "evaluation.json").read_text())
    assert result["validation_samples"] == 0 and "per_class" not in result and result["epoch"] == 2
    text = model_card(job, ["training_curves.png"], describe_start(None, False))
    assert "No validation set" in text and "| validation | none (no validation channel) |" in text
    assert "trained from scratch" in text and "- 1: b" in text


def test_start_weights_in_words():
    assert "incremental" in describe_start(Path("x.pth"), True)
    assert "`resnet18-f37072fd.pth`" in describe_start(Path("/w/resnet18-f37072fd.pth"), False)


def test_card_of_a_job_stopped_before_its_first_epoch_says_untrained():
    job = job_without_validation()
    job.result = FitResult({}, 0, 0, {}, stopped_by_signal=True)
    assert "No epoch finished: the saved weights are untrained" in model_card(job, [], describe_start(None, False))


def test_card_states_the_decision_threshold_its_rule_and_validation_operating_point():
    job = job_without_validation()
    entry = {"value": 0.37, "rule": "youden", "positive_class": 1,
             "validation": {"sensitivity": 0.95, "specificity": 0.9, "balanced_accuracy": 0.925}}
    text = model_card(job, [], describe_start(None, False), entry)
    assert "## Decision threshold" in text
    assert "class 1 (`b`) when its class-1 probability is >= 0.37" in text and "Youden's J" in text
    assert "sensitivity 0.95, specificity 0.9, balanced accuracy 0.925" in text
    fixed = model_card(job, [], describe_start(None, False), {"value": 0.6, "rule": "fixed", "positive_class": 1})
    assert ">= 0.6, set by the decision_threshold hyperparameter" in fixed and "On validation" not in fixed
    assert "## Decision threshold" not in model_card(job, [], describe_start(None, False))
