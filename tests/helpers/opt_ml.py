"""A fake /opt/ml tree (SageMaker's container layout) under a temporary folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional


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

    def model_as_channel(self) -> Path:
        """The trained model copied into a `model` channel, checkpoints cleared: the next run is incremental."""
        model_channel = self.channel("model")
        for name in ("model.pt", "manifest.json"):
            (model_channel / name).write_bytes((self.model_dir / name).read_bytes())
        for checkpoint in self.checkpoint_dir.glob("*"):
            checkpoint.unlink()
        return model_channel

    def env(self, task: str = "classification") -> dict:
        env = dict(os.environ)
        env.update({"SAGEMAKER_BASE_DIR": str(self.base), "SMCV_TASK": task, "PYTHONUNBUFFERED": "1",
                    "OMP_NUM_THREADS": "1", "SMCV_SPOOL_DIR": str(self.base.parent / "spool")})
        return env
