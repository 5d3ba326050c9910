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
from smcv.local_predict import predict_file
from smcv.serving.codecs import JSON_VERBOSE

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOCAL_TEST = Path(__file__).resolve().parents[2] / "local_test"


def load_script(name: str):
    """local_test/<name>.py as a module (the demo's scripts are not part of the package)."""
    spec = importlib.util.spec_from_file_location(name, LOCAL_TEST / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("task", ["classification", "detection", "segmentation"])
def test_demo_sample_reaches_its_floor(task, opt_ml, capsys):
    generator = load_script("make_task_sample")
    config = generator.demo_config(task)
    generator.make_sample(task, opt_ml.base)
    hps = json.loads((opt_ml.base / "input" / "config" / "hyperparameters.json").read_text())
    assert hps == config["hyperparameters"] and hps["seed"] == "0"
    proc = subprocess.run([sys.executable, "-m", "smcv.train"], env=opt_ml.env(task), capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    manifest = artifact.load_manifest(opt_ml.model_dir)
    value = manifest["metrics"][config["metric"]]
    with capsys.disabled():  # shown with pytest -s: the measured value beside its floor
        print(f"\ndemo floor: {task} {config['metric']}={value:.4f} (floor {config['floor']})")
    assert value >= config["floor"], f"{task}: {config['metric']}={value} is below the demo's floor {config['floor']}\n{out[-3000:]}"
    assert f"(best epoch {manifest['selected_epoch']} of {hps['epochs']}; {config['metric']}=" in out
    assert (opt_ml.base / "payload.png").is_file() and len(manifest["class_names"]) == int(hps["num_classes"])
    answer_and_picture(task, opt_ml.base, capsys)


def answer_and_picture(task: str, base: Path, capsys) -> None:
    """The verbose answer for the payload is right, and the demo's renderer turns it into lines and a picture."""
    body, _ = predict_file(base / "model", base / "payload.png", JSON_VERBOSE)
    (base / "prediction_verbose.json").write_bytes(body)
    answer = json.loads(body)
    if task == "classification":
        assert answer["predicted_label"] == "stripes" and answer["top_k"][0]["probability"] > 0.5
    elif task == "detection":
        assert {d["label"] for d in answer["detections"] if d["score"] >= 0.5} == {"circle", "square"}
    else:
        assert 0.05 < answer["class_share"]["cell"] < 0.4 and answer["labels"] == ["background", "cell"]
    capsys.readouterr()
    assert load_script("render").main([task, str(base)]) == 0
    printed = capsys.readouterr().out
    assert "prediction.png" in printed and (base / "prediction.png").stat().st_size > 0
    assert (base / "metric.txt").read_text().startswith(generator_metric(task))


def generator_metric(task: str) -> str:
    return json.loads((LOCAL_TEST / "demo.json").read_text())[task]["metric"] + "="
