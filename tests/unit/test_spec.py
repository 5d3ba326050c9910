"""The CreateAlgorithm TrainingSpecification generated from each task's schema."""

from __future__ import annotations

import pytest

from smcv.spec import training_specification
from smcv.tasks import TASKS, get_task


@pytest.mark.parametrize("name", list(TASKS))
def test_specification_matches_the_task(name):
    task = get_task(name)
    spec = training_specification(task, "123.dkr.ecr/smcv:1")
    params = {p["Name"]: p for p in spec["SupportedHyperParameters"]}
    assert set(params) == set(task.schema().params)
    assert params["num_classes"]["IsRequired"] and "DefaultValue" not in params["num_classes"]
    assert params["epochs"]["Type"] == "Integer" and not params["epochs"]["IsRequired"]
    assert params["amp"]["Range"] == {"CategoricalParameterRangeSpecification": {"Values": ["0", "1"]}}
    assert params["precision_dtype"]["Type"] == "Categorical" and params["precision_dtype"]["DefaultValue"] == "float32"
    assert spec["SupportedTuningJobObjectiveMetrics"] == [{"Type": "Maximize", "MetricName": task.objective_metric}]
    channels = spec["TrainingChannels"]
    assert [c["Name"] for c in channels] == list(task.channel_names) and channels[0]["IsRequired"]
    assert channels[0]["SupportedInputModes"] == ["File", "Pipe"] and channels[-1]["SupportedInputModes"] == ["File"]
    assert "application/x-sagemaker-model" in next(c for c in channels if c["Name"] == "model")["SupportedContentTypes"]
    metric_names = {m["Name"] for m in spec["MetricDefinitions"]}
    assert task.objective_metric in metric_names


def test_ranged_floats_are_continuous_with_their_bounds():
    spec = training_specification(get_task("classification"), "img")
    lr = next(p for p in spec["SupportedHyperParameters"] if p["Name"] == "learning_rate")
    assert lr["Type"] == "Continuous" and lr["IsTunable"]
    assert lr["Range"] == {"ContinuousParameterRangeSpecification": {"MinValue": "0", "MaxValue": "1"}}
