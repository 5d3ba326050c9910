"""The smcv command line: metric definitions, hyperparameter table, algorithm specification, task selection."""

import json
import re

import pytest

from smcv.cli import main
from smcv.engine.metrics_log import format_metric_line
from smcv.errors import ConfigError
from smcv.tasks import get_task


@pytest.mark.parametrize("task, objective", [("classification", "validation:accuracy"), ("detection", "validation:mAP"),
                                             ("segmentation", "validation:mIOU")])
def test_metric_definitions_parse_the_metric_lines(task, objective, capsys):
    assert main(["metric-definitions", "--task", task]) == 0
    definitions = {d["Name"]: d["Regex"] for d in json.loads(capsys.readouterr().out)}
    line = format_metric_line(4, {"train:loss": 0.5, objective: 0.625})
    assert float(re.search(definitions[objective], line).group(1)) == 0.625
    assert all(len(d) <= 500 for d in definitions.values()) and len(definitions) <= 40


def test_algorithm_spec_lists_required_hyperparameters_and_channels(capsys):
    assert main(["algorithm-spec", "--task", "segmentation", "--image", "acct.dkr.ecr.r.amazonaws.com/smcv:1"]) == 0
    spec = json.loads(capsys.readouterr().out)
    params = {p["Name"]: p for p in spec["SupportedHyperParameters"]}
    assert params["num_classes"]["IsRequired"] and not params["epochs"]["IsRequired"]
    assert params["optimizer"]["Range"]["CategoricalParameterRangeSpecification"]["Values"]
    assert [c["Name"] for c in spec["TrainingChannels"] if c["IsRequired"]] == ["train"]
    assert "label_map" in [c["Name"] for c in spec["TrainingChannels"]]
    assert spec["SupportedTuningJobObjectiveMetrics"] == [{"Type": "Maximize", "MetricName": "validation:mIOU"}]


def test_hyperparameter_table(capsys):
    assert main(["hyperparameters", "--task", "detection"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["base_network"]["default"] == "vgg-16" and rows["nms_threshold"]["default"] == 0.45


def test_builtin_algorithm_names_select_tasks():
    assert get_task("object-detection").name == "detection"
    with pytest.raises(ConfigError, match="SMCV_TASK"):
        get_task("pose")
