"""Detection (from a Ground Truth manifest) and segmentation images: train in the container, serve, predict."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import uuid

import pytest
from PIL import Image

from tests.container.helpers import LOCAL_TEST, docker, free_port, http, run_container, wait_for_ping


def task_image(image_name: str, task: str) -> str:
    ref = f"{image_name}-{task}:latest"
    if docker("image", "inspect", ref, check=False).returncode != 0:
        pytest.fail(f"image {ref} not found: build it first (./build_and_push.sh --no-push)")
    return ref


def train_and_serve(image: str, task: str, tmp_path, containers, epochs: int):
    """Make the task's sample, train in the container, start `serve`; return (opt_ml, port)."""
    opt_ml = tmp_path / "opt_ml"
    subprocess.run([sys.executable, str(LOCAL_TEST / "make_task_sample.py"), task, str(opt_ml)], check=True)
    hps_file = opt_ml / "input" / "config" / "hyperparameters.json"
    hps = json.loads(hps_file.read_text())
    hps["epochs"] = str(epochs)
    hps_file.write_text(json.dumps(hps))
    result = run_container(image, opt_ml, "train", timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert f"#metrics epoch={epochs};" in result.stdout
    manifest = json.loads((opt_ml / "model" / "manifest.json").read_text())
    assert manifest["task"] == task
    port, name = free_port(), f"smcv-test-{task}-{uuid.uuid4().hex[:8]}"
    containers.append(name)
    docker("run", "-d", "--name", name, "-v", f"{opt_ml}:/opt/ml", "-p", f"127.0.0.1:{port}:8080", image, "serve")
    wait_for_ping(port, container=name)
    return opt_ml, port


def test_detection_ground_truth_manifest_round_trip(image_name, tmp_path, containers):
    image = task_image(image_name, "detection")
    opt_ml, port = train_and_serve(image, "detection", tmp_path, containers, epochs=1)
    manifest = json.loads((opt_ml / "model" / "manifest.json").read_text())
    assert manifest["class_names"] == ["circle", "square"]
    payload = (opt_ml / "payload.png").read_bytes()
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/invocations", payload, {"Content-Type": "image/png"})
    assert status == 200, body
    detections = json.loads(body)["prediction"]
    assert detections and all(len(d) == 6 and 0 <= d[2] <= d[4] <= 1 and 0 <= d[3] <= d[5] <= 1 for d in detections)
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/invocations", payload,
                           {"Content-Type": "image/png", "Accept": "application/json;annotation=1"})
    assert status == 200 and "annotations" in json.loads(body)
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/invocations", b"not an image", {"Content-Type": "image/png"})
    assert status == 400 and json.loads(body)["status"] == 400


def test_segmentation_round_trip_serves_a_png_mask(image_name, tmp_path, containers):
    image = task_image(image_name, "segmentation")
    opt_ml, port = train_and_serve(image, "segmentation", tmp_path, containers, epochs=2)
    payload = (opt_ml / "payload.png").read_bytes()
    status, body, _ = http("POST", f"http://127.0.0.1:{port}/invocations", payload,
                                 {"Content-Type": "image/png", "Accept": "image/png"})
    assert status == 200, body
    mask = Image.open(io.BytesIO(body))
    assert mask.size == Image.open(io.BytesIO(payload)).size and mask.mode in ("P", "L")
    assert set(mask.getdata()) <= {0, 1}
