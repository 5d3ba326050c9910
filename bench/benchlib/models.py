"""Model artifacts with random weights for serving benches (throughput does not depend on the values)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from benchlib import jobs
from smcv import artifact
from smcv.task_api import PreparedData
from smcv.tasks import get_task

CLASS_NAMES = {"classification": ["normal", "pneumonia"], "detection": ["Platelets", "RBC", "WBC"],
               "segmentation": ["background", "nucleus"]}


def make_model_dir(task_name: str, folder: Path, network: Optional[str] = None, size: Optional[int] = None,
                   extra: Optional[dict[str, str]] = None) -> Path:
    """An smcv artifact (model.pt + manifest.json) of the task's bench network in `folder`, as a job saves it."""
    task = get_task(task_name)
    names = CLASS_NAMES[task_name]
    hp = task.schema().resolve(jobs.hyperparameters(task_name, len(names), 1, 1, size, network, extra))
    data = PreparedData(None, None, class_names=list(names))
    model = task.build_model(hp, data, {})
    model_state = {k: v for k, v in model.state_dict().items() if not k.startswith("criterion.")}
    manifest = {"task": task.name, "class_names": names, "trained": True, **task.manifest_fields(hp, data)}
    artifact.save_artifact(folder, model_state, manifest)
    return folder
