"""A SageMaker CreateAlgorithm TrainingSpecification generated from a task's schema."""

from __future__ import annotations

from typing import Any

from smcv.engine.metrics_log import metric_definitions
from smcv.task_api import Task

_TYPES = {"int": "Integer", "float": "Continuous", "bool": "Categorical", "str": "FreeText",
          "int_list": "FreeText", "shape": "FreeText"}


def _parameter(row: dict[str, Any], param) -> dict[str, Any]:
    spec: dict[str, Any] = {"Name": row["name"], "Description": (row["help"] or row["name"])[:1024],
                            "Type": _TYPES[param.kind], "IsTunable": param.kind in ("int", "float") or bool(param.choices),
                            "IsRequired": row["required"]}
    if param.choices:
        spec["Type"] = "Categorical"
        spec["Range"] = {"CategoricalParameterRangeSpecification": {"Values": [str(c) for c in param.choices]}}
    elif param.kind == "bool":
        spec["Range"] = {"CategoricalParameterRangeSpecification": {"Values": ["0", "1"]}}
    elif param.kind in ("int", "float") and param.low is not None and param.high is not None:
        key = "IntegerParameterRangeSpecification" if param.kind == "int" else "ContinuousParameterRangeSpecification"
        spec["Range"] = {key: {"MinValue": str(param.low), "MaxValue": str(param.high)}}
    else:
        spec["IsTunable"] = False
    if not row["required"] and row["default"] is not None:
        default = row["default"]
        spec["DefaultValue"] = ",".join(map(str, default)) if isinstance(default, (tuple, list)) else str(default)
    return spec


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
