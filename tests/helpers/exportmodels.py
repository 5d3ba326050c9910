"""Tiny models of each task, written to a model directory the way smcv.train writes one (random init, fixed seed)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from smcv import artifact
from smcv.tasks import get_task
from smcv.task_api import PreparedData

#: small settings per task (random init, nothing downloaded)
TINY = {
    "classification": {"num_classes": "3", "num_training_samples": "6", "num_layers": "18", "image_shape": "3,32,32"},
    "detection": {"num_classes": "2", "num_training_samples": "4", "base_network": "tiny", "image_shape": "300",
                  "use_pretrained_model": "0", "detections_per_image": "20"},
    "segmentation": {"num_classes": "3", "algorithm": "unet", "encoder_name": "resnet18", "encoder_depth": "3",
                     "image_size": "64", "use_pretrained_model": "0"},
}
#: overrides of TINY["segmentation"] giving the built-in's default network, FCN-ResNet50 (with its aux head)
FCN = {"algorithm": "fcn", "encoder_name": None, "encoder_depth": None}
CLASS_NAMES = {"classification": ["cat", "dog", "bird"], "detection": ["car", "person"],
               "segmentation": ["background", "road", "sky"]}


def write_tiny_model(task_name: str, model_dir: Path, seed: int = 0, **overrides: Optional[str]) -> Path:
    """Build the task's network from hyperparameters (an override of None drops a TINY setting), then save model.pt +
    manifest.json like a training job."""
    torch.manual_seed(seed)
    task = get_task(task_name)
    hp = task.schema().resolve({k: v for k, v in {**TINY[task_name], **overrides}.items() if v is not None})
    data = PreparedData(train=[], validation=None, class_names=CLASS_NAMES[task_name], info={})
    model = task.build_model(hp, data, {})
    _randomise_batchnorm(model)
    manifest = {"task": task.name, "class_names": data.class_names, "hyperparameters": dict(hp),
                **task.manifest_fields(hp, data)}
    artifact.save_artifact(model_dir, model.state_dict(), manifest)
    return model_dir


def _randomise_batchnorm(model: torch.nn.Module) -> None:
    """Non-trivial running statistics, so that a wrong normalisation or train/eval mode shows in the outputs."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
