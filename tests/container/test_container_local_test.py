"""local_test/: the shell scripts and the SageMaker SDK (v2) local-mode driver, train -> serve -> predict."""

from __future__ import annotations

import json
import os
import subprocess
import uuid

import pytest

from tests.container.helpers import LOCAL_TEST, docker, docker_cli, free_port, make_opt_ml, wait_for_ping


def test_shell_scripts_round_trip(image, tmp_path):
    """train_local.sh IMAGE, serve_local.sh IMAGE, predict.sh FILE, over a copy of test_dir (2 epochs)."""
    test_dir = make_opt_ml(tmp_path / "test_dir")
    port = free_port()
    name = f"smcv-test-serve-local-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "TEST_DIR": str(test_dir), "PORT": str(port), "DOCKER": docker_cli()}

    train = subprocess.run([str(LOCAL_TEST / "train_local.sh"), image], env=env, capture_output=True, text=True,
                           timeout=600)
    assert train.returncode == 0, train.stdout + train.stderr
    assert "#metrics epoch=2;" in train.stdout
    assert (test_dir / "model" / "manifest.json").is_file()

    server = subprocess.Popen([str(LOCAL_TEST / "serve_local.sh"), image, "--name", name], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_ping(port, container=name)
        predict = subprocess.run([str(LOCAL_TEST / "predict.sh"), str(test_dir / "payload.png")], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert predict.returncode == 0, predict.stdout + predict.stderr
        probabilities = json.loads(predict.stdout)
        assert len(probabilities) == 2 and abs(sum(probabilities) - 1) < 1e-3
    finally:
        server.terminate()  # docker run proxies SIGTERM to the container, which stops; --rm removes it
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
        docker("rm", "-f", name, check=False)


def test_sdk_local_mode_round_trip(image, tmp_path):
    """SageMaker Python SDK v2 local mode: Estimator.fit, deploy, predict with its serializers, and a Transformer
    job whose output is {"prediction": [...]} as the built-in writes in batch transform, offline."""
    python = os.environ.get("SMCV_SDK_PYTHON")
    if not python:
        pytest.skip("SMCV_SDK_PYTHON is not set (a python with local_test/requirements-sdk.txt installed)")
    probe = subprocess.run([python, "-c", "import sagemaker; print(sagemaker.__version__)"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"SMCV_SDK_PYTHON={python} cannot import sagemaker: {probe.stderr[-300:]}")
    test_dir = make_opt_ml(tmp_path / "test_dir")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AWS_") or key in ("AWS_DEFAULT_REGION", "AWS_REGION")}  # no credentials
    result = subprocess.run([python, str(LOCAL_TEST / "sdk_local_mode.py"), "--image", image,
                             "--test-dir", str(test_dir), "--payload", str(test_dir / "payload.png"),
                             "--work-dir", str(tmp_path / "work"), "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "[sdk_local_mode] OK" in output
    assert (tmp_path / "work" / "output" / "model.tar.gz").is_file()
    assert "[sdk_local_mode] batch transform output payload.png.out" in output


@pytest.mark.parametrize("task", ["detection", "segmentation"])
def test_sdk_local_mode_round_trip_detection_and_segmentation(image_name, task, tmp_path):
    """The same SDK v2 round trip for the other built-ins: detection from a Ground Truth manifest, segmentation from
    the four channels and a label map; Estimator.fit, deploy, predict with the SDK's serializers, a Transformer job."""
    python = os.environ.get("SMCV_SDK_PYTHON")
    if not python:
        pytest.skip("SMCV_SDK_PYTHON is not set (a python with local_test/requirements-sdk.txt installed)")
    image = f"{image_name}-{task}:latest"
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("AWS_") or key in ("AWS_DEFAULT_REGION", "AWS_REGION")}  # no credentials
    result = subprocess.run([python, str(LOCAL_TEST / "sdk_local_mode.py"), "--image", image, "--task", task,
                             "--epochs", "1", "--test-dir", str(tmp_path / "test_dir"),
                             "--work-dir", str(tmp_path / "work"), "--port", str(free_port())],
                            env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "[sdk_local_mode] OK" in output and "[sdk_local_mode] batch transform output payload.png.out" in output
