"""The CreateAlgorithm TrainingSpecification generated from each task's schema."""

from __future__ import annotations

import json
import re

import pytest

from smcv.spec import placeholder_image, training_specification
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


def _sagemaker_operation(name: str):
    from botocore.session import get_session  # botocore is pinned in the test extra

    return get_session().get_service_model("sagemaker").operation_model(name)


def _shape_errors(value, shape, path: str = "") -> list[str]:
    """What botocore's validator leaves out: enums, string lengths and simple patterns, recursively."""
    errors = []
    if shape.type_name == "structure":
        for key, item in value.items():
            errors += _shape_errors(item, shape.members[key], f"{path}.{key}")
    elif shape.type_name == "list":
        for i, item in enumerate(value):
            errors += _shape_errors(item, shape.member, f"{path}[{i}]")
    elif shape.type_name == "string":
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of the API's values")
        limits = shape.metadata
        if not limits.get("min", 0) <= len(value) <= limits.get("max", 1 << 30):
            errors.append(f"{path}: length {len(value)} outside {limits.get('min')}..{limits.get('max')}")
        pattern = limits.get("pattern", "")
        if pattern and "\\p" not in pattern and not re.fullmatch(pattern, value):
            errors.append(f"{path}: {value!r} does not match {pattern}")
    return errors


@pytest.mark.parametrize("name", list(TASKS))
def test_specification_is_a_valid_create_algorithm_request(name):
    """The request shape of SageMaker's CreateAlgorithm (botocore's service model) accepts every task's spec."""
    from botocore.validate import ParamValidator

    spec = training_specification(get_task(name), placeholder_image(name))
    request = {"AlgorithmName": f"smcv-{name}", "TrainingSpecification": spec}
    shape = _sagemaker_operation("CreateAlgorithm").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()
    assert _shape_errors(request, shape) == []
    names = [p["Name"] for p in spec["SupportedHyperParameters"]]
    assert len(names) == len(set(names))


def _range_values(param: dict) -> tuple[str, dict]:
    ((kind, bounds),) = param["Range"].items()
    return kind, bounds


@pytest.mark.parametrize("name", list(TASKS))
def test_defaults_lie_inside_their_ranges_and_tunable_parameters_have_one(name):
    for param in training_specification(get_task(name), "img")["SupportedHyperParameters"]:
        if param["IsTunable"]:
            assert "Range" in param, f"{param['Name']} is tunable without a range"
        if "Range" not in param or "DefaultValue" not in param:
            continue
        kind, bounds = _range_values(param)
        default = param["DefaultValue"]
        if kind == "CategoricalParameterRangeSpecification":
            assert default in bounds["Values"], f"{param['Name']}: default {default!r} not in {bounds['Values']}"
        else:
            assert float(bounds["MinValue"]) <= float(default) <= float(bounds["MaxValue"]), (param["Name"], default)


def test_booleans_default_in_the_spelling_of_their_range():
    params = {p["Name"]: p for p in training_specification(get_task("detection"), "img")["SupportedHyperParameters"]}
    assert params["use_pretrained_model"]["DefaultValue"] in ("0", "1")
    assert params["amp"]["DefaultValue"] == "1" and params["amp"]["IsTunable"]


@pytest.mark.parametrize("hyperparameter, bounds", [("epochs", ("1", "1000")), ("mini_batch_size", ("1", "1024"))])
def test_epochs_and_batch_size_are_tunable_integers(hyperparameter, bounds):
    params = {p["Name"]: p for p in training_specification(get_task("classification"), "img")["SupportedHyperParameters"]}
    param = params[hyperparameter]
    assert param["IsTunable"] and param["Type"] == "Integer"
    assert param["Range"] == {"IntegerParameterRangeSpecification": {"MinValue": bounds[0], "MaxValue": bounds[1]}}


@pytest.mark.parametrize("name", list(TASKS))
def test_the_cli_names_each_task_s_own_image_by_default(name, capsys):
    from smcv.cli import main

    assert main(["algorithm-spec", "--task", name]) == 0
    spec = json.loads(capsys.readouterr().out)
    assert spec["TrainingImage"].endswith(f"/smcv-{name}:latest")
