"""A SageMaker CreateAlgorithm TrainingSpecification generated from a task's schema."""

from __future__ import annotations

from typing import Any, Optional

from smcv.engine.metrics_log import metric_definitions
from smcv.task_api import Task

_TYPES = {"int": "Integer", "float": "Continuous", "bool": "Categorical", "str": "FreeText",
          "int_list": "FreeText", "shape": "FreeText"}


def _default_text(param, default: Any) -> str:
    if param.kind == "bool":
        return "1" if default else "0"  # the range's own spelling: SageMaker checks defaults against it
    if isinstance(default, (tuple, list)):
        return ",".join(map(str, default))
    return str(default)


def _numeric_range(param) -> Optional[tuple[float, float]]:
    if param.low is not None and param.high is not None:
        return param.low, param.high
    return param.tuning


def _parameter(row: dict[str, Any], param) -> dict[str, Any]:
    spec: dict[str, Any] = {"Name": row["name"], "Description": (row["help"] or row["name"])[:1024],
                            "Type": _TYPES[param.kind], "IsTunable": False, "IsRequired": row["required"]}
    bounds = _numeric_range(param) if param.kind in ("int", "float") else None
    if param.choices:
        spec["Type"] = "Categorical"
        spec["Range"] = {"CategoricalParameterRangeSpecification": {"Values": [str(c) for c in param.choices]}}
        spec["IsTunable"] = True
    elif param.kind == "bool":
        spec["Range"] = {"CategoricalParameterRangeSpecification": {"Values": ["0", "1"]}}
        spec["IsTunable"] = True
    elif bounds is not None:
        key = "IntegerParameterRangeSpecification" if param.kind == "int" else "ContinuousParameterRangeSpecification"
        low, high = (int(b) for b in bounds) if param.kind == "int" else bounds
        spec["Range"] = {key: {"MinValue": str(low), "MaxValue": str(high)}}
        spec["IsTunable"] = True
    if not row["required"] and row["default"] is not None:
        spec["DefaultValue"] = _default_text(param, row["default"])
    return spec


def placeholder_image(task_name: str) -> str:
    """The ECR URI build_and_push.sh gives a task's image, with account and region left to fill in."""
    return f"<account>.dkr.ecr.<region>.amazonaws.com/smcv-{task_name}:latest"


def training_specification(task: Task, image: str) -> dict[str, Any]:
    """The TrainingSpecification block of CreateAlgorithm for this task's image."""
    schema = task.schema()
    params = [_parameter(row, schema.params[row["name"]]) for row in schema.describe()]
    return {
        "TrainingImage": image,
        "SupportedHyperParameters": params,
        "SupportedTrainingInstanceTypes": ["ml.p3.2xlarge", "ml.g5.xlarge", "ml.g5.2xlarge", "ml.p4d.24xlarge", "ml.m5.xlarge"],
        "SupportsDistributedTraining": True,
        "MetricDefinitions": metric_definitions(list(task.metric_names)),
        "TrainingChannels": [
            {"Name": name, "IsRequired": i == 0, "SupportedInputModes": ["File", "Pipe"] if i < 2 else ["File"],
             "SupportedContentTypes": list(task.content_types) + (["application/x-sagemaker-model"] if name == "model" else [])}
            for i, name in enumerate(task.channel_names)],
        "SupportedTuningJobObjectiveMetrics": [{"Type": task.objective_type, "MetricName": task.objective_metric}],
    }
