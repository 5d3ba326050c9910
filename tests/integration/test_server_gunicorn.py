"""The real server: `python -m smcv.serving.server` under gunicorn, with the fake task, on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")

FAKE_TASK_DIR = Path(__file__).resolve().parents[1] / "helpers"
STARTUP_WAIT_S = 180  # bounded wait for the worker to import torch, load and warm up

SITECUSTOMIZE = """
import smcv.tasks
smcv.tasks.TASKS["fake"] = "smcv_fake_task:FakeTask"
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_WAIT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.25)
    pytest.fail(f"server not ready after {STARTUP_WAIT_S} s:\n{log.read_text()}")


@pytest.fixture
def server(tmp_path):
    sys.path.insert(0, str(FAKE_TASK_DIR))
    try:
        import smcv_fake_task
    finally:
        sys.path.remove(str(FAKE_TASK_DIR))
    smcv_fake_task.write_model(tmp_path / "ml" / "model")
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)  # registers the fake task in the server processes
    port = free_port()
    env = dict(os.environ, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_BASE_DIR=str(tmp_path / "ml"),
               SAGEMAKER_MODEL_SERVER_WORKERS="1", SMCV_SERVER_THREADS="4", SMCV_MAX_BATCH_SIZE="2",
               SMCV_DEVICE="cpu", SAGEMAKER_MAX_PAYLOAD_IN_MB="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(site), str(FAKE_TASK_DIR), os.environ.get("PYTHONPATH")])))
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "smcv.serving.server"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
        yield url, process, log, smcv_fake_task
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_serve_predict_survive_bad_input_and_stop(server):
    url, process, log, fake = server
    image = fake.image_bytes((0, 255, 0))
    response = requests.post(f"{url}/invocations", data=image, headers={"Content-Type": "image/png"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["mean"] == pytest.approx([0.0, 1.0, 0.0])

    garbage = requests.post(f"{url}/invocations", data=b"garbage", headers={"Content-Type": "application/x-image"}, timeout=60)
    assert garbage.status_code == 400 and garbage.json()["status"] == 400
    unsupported = requests.post(f"{url}/invocations", data=image, headers={"Content-Type": "text/csv"}, timeout=60)
    assert unsupported.status_code == 415

    chunked = requests.post(f"{url}/invocations", data=(b"\xff" * 65536 for _ in range(32)),
                            headers={"Content-Type": "image/jpeg"}, timeout=60)  # 2 MB, no Content-Length
    assert chunked.status_code == 413 and chunked.json()["max_payload_mb"] == 1

    again = requests.post(f"{url}/invocations", data=image, headers={"Content-Type": "image/png", "Accept": "text/csv"},
                          timeout=60)
    assert again.status_code == 200 and again.headers["Content-Type"].startswith("text/csv")
    params = requests.get(f"{url}/execution-parameters", timeout=10).json()
    assert params["BatchStrategy"] == "SINGLE_RECORD" and params["MaxPayloadInMB"] == 1

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    text = log.read_text()
    assert "model loaded in" in text and "task=fake" in text
    assert '"POST /invocations' in text and '"GET /ping' not in text
