"""A fake /opt/ml (SageMaker's container layout) for a training job run by a bench."""

from __future__ import annotations

import json
from pathlib import Path


def write_opt_ml(base: Path, hyperparameters: dict[str, str], channels: dict[str, Path]) -> Path:
    """input/config (hyperparameters, File-mode channels, one host) and input/data/<channel> links under base."""
    config, data = base / "input" / "config", base / "input" / "data"
    for folder in (config, data, base / "model", base / "output"):
        folder.mkdir(parents=True, exist_ok=True)
    for name, folder in channels.items():
        (data / name).symlink_to(folder.resolve(), target_is_directory=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {name: {"ContentType": "application/x-image", "TrainingInputMode": "File"} for name in channels}))
    (config / "resourceconfig.json").write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"],
                                                            "network_interface_name": "eth0"}))
    return base
