"""Shared fixtures: a fake /opt/ml tree and tiny generated images."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(min(2, os.cpu_count() or 1))


def write_image(path: Path, value: int, size: int = 16, mode: str = "L", seed: int = 0) -> Path:
    """A noisy image around `value` (grey, RGB or RGBA), PNG or JPEG by suffix."""
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    array = np.clip(rng.normal(value, 12, (size, size, channels)), 0, 255).astype("uint8")
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def write_class_folders(root: Path, per_class: int, classes=("normal", "pneumonia"), size: int = 16,
                        mode: str = "L", suffix: str = ".png") -> list[Path]:
    """Class folders whose images differ in brightness (easy to learn)."""
    paths = []
    for c, name in enumerate(classes):
        for i in range(per_class):
            paths.append(write_image(root / name / f"{i}{suffix}", 50 + 150 * c, size, mode, seed=1000 * c + i))
    return paths


class OptMl:
    """A fake /opt/ml under a temporary folder."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for sub in ("input/config", "input/data", "model", "output"):
            (base / sub).mkdir(parents=True, exist_ok=True)

    def channel(self, name: str) -> Path:
        path = self.base / "input" / "data" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def configure(self, hyperparameters: dict, channels: Optional[dict] = None, hosts=("algo-1",)) -> None:
        cfg = self.base / "input" / "config"
        (cfg / "hyperparameters.json").write_text(json.dumps({k: str(v) for k, v in hyperparameters.items()}))
        channels = channels if channels is not None else {
            p.name: {"ContentType": "application/x-image", "TrainingInputMode": "File"}
            for p in (self.base / "input" / "data").iterdir() if p.is_dir()}
        (cfg / "inputdataconfig.json").write_text(json.dumps(channels))
        (cfg / "resourceconfig.json").write_text(json.dumps({"current_host": hosts[0], "hosts": list(hosts),
                                                             "network_interface_name": "eth0"}))

    @property
    def failure(self) -> str:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else ""

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def checkpoint_dir(self) -> Path:
        return self.base / "checkpoints"

    def env(self, task: str = "classification") -> dict:
        env = dict(os.environ)
        env.update({"SAGEMAKER_BASE_DIR": str(self.base), "SMCV_TASK": task, "PYTHONUNBUFFERED": "1",
                    "OMP_NUM_THREADS": "1", "SMCV_SPOOL_DIR": str(self.base.parent / "spool")})
        return env


@pytest.fixture
def opt_ml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OptMl:
    """A fake /opt/ml with SAGEMAKER_BASE_DIR pointing at it."""
    tree = OptMl(tmp_path / "opt_ml")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tree.base))
    monkeypatch.setenv("SMCV_SPOOL_DIR", str(tmp_path / "spool"))
    return tree


TINY_CLASSIFICATION = {"num_classes": 2, "num_training_samples": 16, "num_layers": 18, "image_shape": "1,16,16",
                       "epochs": 2, "mini_batch_size": 8, "learning_rate": 0.01, "optimizer": "adam"}
