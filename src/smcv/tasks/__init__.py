"""Task registry: task name to the module that implements it (imported lazily)."""

from __future__ import annotations

import importlib

from smcv.errors import ConfigError

TASKS = {
    "classification": "smcv.tasks.classification:ClassificationTask",
    "detection": "smcv.tasks.detection:DetectionTask",
    "segmentation": "smcv.tasks.segmentation:SegmentationTask",
}

ALIASES = {
    "image-classification": "classification",
    "object-detection": "detection",
    "semantic-segmentation": "segmentation",
}


def get_task(name: str):
    """An instance of the named task."""
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in TASKS:
        raise ConfigError(f"unknown task {name!r}; set SMCV_TASK to one of: {', '.join(TASKS)}")
    module_name, class_name = TASKS[key].split(":")
    return getattr(importlib.import_module(module_name), class_name)()
