"""The demo's samples are learnable: each task trains natively (no Docker) on its sample from local_test with the
demo's hyperparameters (local_test/demo.json, fixed seeds) and reaches the floor the demo promises."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from smcv import artifact

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOCAL_TEST = Path(__file__).resolve().parents[2] / "local_test"


def load_generator():
    """local_test/make_task_sample.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("make_task_sample", LOCAL_TEST / "make_task_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task", ["classification", "detection", "segmentation"])
def test_demo_sample_reaches_its_floor(task, opt_ml):
    generator = load_generator()
    config = generator.demo_config(task)
    generator.make_sample(task, opt_ml.base)
    hps = json.loads((opt_ml.base / "input" / "config" / "hyperparameters.json").read_text())
    assert hps == config["hyperparameters"] and hps["seed"] == "0"
    proc = subprocess.run([sys.executable, "-m", "smcv.train"], env=opt_ml.env(task), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    manifest = artifact.load_manifest(opt_ml.model_dir)
    value = manifest["metrics"][config["metric"]]
    assert value >= config["floor"], f"{task}: {config['metric']}={value} is below the demo's floor {config['floor']}\n{out[-3000:]}"
    assert f"(best epoch {manifest['selected_epoch']} of {hps['epochs']}; {config['metric']}=" in out
    assert (opt_ml.base / "payload.png").is_file() and len(manifest["class_names"]) == int(hps["num_classes"])
