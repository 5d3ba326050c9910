"""The task registry is the one task list: containers/tasks.txt and the Dockerfile's stages follow it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from smcv.errors import ConfigError
from smcv.task_api import Task
from smcv.tasks import ALIASES, TASKS, get_task

REPO = Path(__file__).resolve().parents[2]


def test_tasks_txt_lists_the_registry():
    assert (REPO / "containers" / "tasks.txt").read_text().split() == list(TASKS)


def test_dockerfile_has_one_stage_per_task():
    dockerfile = (REPO / "containers" / "Dockerfile").read_text()
    stages = dict(re.findall(r"^FROM runtime AS (\S+)\nENV SMCV_TASK=(\S+)$", dockerfile, re.M))
    assert stages == {name: name for name in TASKS}


@pytest.mark.parametrize("name", [*TASKS, *ALIASES, " Image-Classification "])
def test_every_name_and_alias_gives_a_task(name):
    task = get_task(name)
    assert isinstance(task, Task) and task.name in TASKS


def test_unknown_task_names_the_choices():
    with pytest.raises(ConfigError, match="set SMCV_TASK to one of: classification, detection, segmentation"):
        get_task("keypoints")
