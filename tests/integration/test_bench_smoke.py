"""Smoke test of the scripts in bench/: each runs on the CPU at the tiniest sizes and prints one JSON object with
its figures as positive numbers (no time limits are asserted: the figures mean nothing on a CI machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WAIT_S = 600  # bounded wait for one bench run


def run_bench(script: str, *args: str) -> dict:
    """`python bench/<script> --device cpu ...` (one intra-op thread: CI machines are small and shared); its last
    stdout line parsed as JSON."""
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), "--device", "cpu", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=WAIT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines, proc.stderr
    return json.loads(lines[-1])


def assert_positive(result: dict, *keys: str) -> None:
    for key in keys:
        assert isinstance(result.get(key), (int, float)) and result[key] > 0, (key, result)


TRAIN_ARGS = {
    "classification": ["--network", "18", "--size", "32"],
    "detection": ["--network", "tiny", "--size", "300"],
    "segmentation": ["--network", "resnet18", "--size", "32", "--hp", "encoder_depth=3"],
}


@pytest.mark.parametrize("task", sorted(TRAIN_ARGS))
def test_train_real_data(task):
    result = run_bench("train_real_data.py", "--task", task, *TRAIN_ARGS[task], "--batch", "2", "--steps", "2",
                       "--workers", "0")
    assert result["bench"] == "train_real_data" and result["task"] == task and result["data"] == "synthetic"
    assert result["device"] == "cpu" and result["precision"] == "float32"
    assert_positive(result, "real_images_per_s", "synthetic_images_per_s", "real_to_synthetic", "batch", "steps")


def test_ssd_vs_reference():
    result = run_bench("ssd_vs_reference.py", "--batch", "1", "--steps", "1", "--workers", "0")
    assert result["bench"] == "ssd_vs_reference" and result["model"] == "ssd300_vgg16"
    assert_positive(result, "reference_fp32_images_per_s", "smcv_images_per_s", "speedup")


def test_serving_http():
    result = run_bench("serving_http.py", "--tasks", "classification", "--network", "classification=18",
                       "--size", "classification=32", "--concurrency", "1", "2", "--requests", "4", "--seconds", "10",
                       "--repeats", "2", "--client-processes", "1", "--jpeg-decode", "device",
                       "--prepare-overlap", "on")
    assert result["bench"] == "serving_http" and set(result["tasks"]) == {"classification"}
    found = result["tasks"]["classification"]
    assert found["body"] == "image/jpeg"
    for server in ("batched", "batch1", "batched_jpeg_device", "batched_overlap_on"):
        for load in ("c1", "c2"):
            figures = found[server][load]
            assert figures["errors"] == 0, (server, load, figures)
            assert_positive(figures, "images_per_s", "p50_ms", "p99_ms", "requests")
    for stages in ("inprocess_ms", "inprocess_ms_jpeg_device"):
        assert_positive(found[stages], "decode", "preprocess", "model", "encode", "total")
    assert_positive(found, "batched_to_batch1_c2", "pre_post_to_model")
    for key in ("server_overhead_ms_c1", "batched_server_overhead_ms_c1"):
        assert isinstance(found[key], float), key  # a difference of two timings: its sign is not checked on CPU


def test_time_to_first_step():
    result = run_bench("time_to_first_step.py", "--network", "18", "--size", "32", "--batch", "2",
                       "--no-progress-line", "--timeout", "300")
    assert result["bench"] == "time_to_first_step" and result["device"] == "cpu"
    assert_positive(result, "import_torch_s", "first_step_s", "first_step_to_import_torch")
