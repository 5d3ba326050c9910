"""The real server: `python -m smcv.serving.server` under gunicorn, with the fake task, on a free port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import pytest

from tests.helpers.servers import free_port, stop_server, wait_until_ready, worker_pids

requests = pytest.importorskip("requests")

FAKE_TASK_DIR = Path(__file__).resolve().parents[1] / "helpers"

SITECUSTOMIZE = """
import smcv.tasks
smcv.tasks.TASKS["fake"] = "smcv_fake_task:FakeTask"
"""


def fake_task_module():
    sys.path.insert(0, str(FAKE_TASK_DIR))
    try:
        import smcv_fake_task
    finally:
        sys.path.remove(str(FAKE_TASK_DIR))
    return smcv_fake_task


def start_server(tmp_path: Path, manifest: Optional[dict] = None, **env_overrides: Optional[str]):
    """Start the server on a free loopback port with the fake model; env values of None unset a variable."""
    fake = fake_task_module()
    fake.write_model(tmp_path / "ml" / "model", **(manifest or {}))
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)  # registers the fake task in the server processes
    port = free_port()
    env = dict(os.environ, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_BASE_DIR=str(tmp_path / "ml"),
               SAGEMAKER_MODEL_SERVER_WORKERS="1", SMCV_SERVER_THREADS="4", SMCV_MAX_BATCH_SIZE="2",
               SMCV_DEVICE="cpu", SAGEMAKER_MAX_PAYLOAD_IN_MB="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(site), str(FAKE_TASK_DIR), os.environ.get("PYTHONPATH")])))
    for name, value in env_overrides.items():
        env.pop(name, None) if value is None else env.__setitem__(name, value)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "smcv.serving.server"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    return f"http://127.0.0.1:{port}", process, log, fake


@contextmanager
def running_server(tmp_path: Path, manifest: Optional[dict] = None, **env_overrides: Optional[str]):
    """A started server, killed with its workers afterwards."""
    url, process, log, fake = start_server(tmp_path, manifest, **env_overrides)
    try:
        wait_until_ready(process, url, log)
        yield url, process, log, fake
    finally:
        stop_server(process)  # the master and its workers (own session)


@pytest.fixture
def server(tmp_path):
    with running_server(tmp_path) as started:
        yield started


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


def post_image(url: str, image: bytes, timeout: float = 30) -> int:
    """Status of one /invocations on a new connection (so that connections spread over the workers)."""
    with requests.Session() as session:
        return session.post(f"{url}/invocations", data=image, headers={"Content-Type": "image/png"},
                            timeout=timeout).status_code


def post_many(url: str, image: bytes, count: int, parallel: int = 8) -> list:
    """Statuses (or exception names) of count requests sent parallel at a time."""
    def one(_: int) -> object:
        try:
            return post_image(url, image)
        except requests.RequestException as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.slow
def test_first_ping_200_means_every_worker_serves(tmp_path):
    # worker slot 1 loads 3 s after slot 0: before the fix it took connections meanwhile and answered 503
    with running_server(tmp_path, {"load_delay_s": 1.5}, SAGEMAKER_MODEL_SERVER_WORKERS="2") as (url, _, _, fake):
        statuses = post_many(url, fake.image_bytes(), count=40)
    assert statuses == [200] * 40, statuses


@pytest.mark.slow
def test_worker_killed_its_replacement_never_answers_503(tmp_path):
    with running_server(tmp_path, {"load_delay_s": 1.5}, SAGEMAKER_MODEL_SERVER_WORKERS="2") as (url, process, _, fake):
        assert post_many(url, fake.image_bytes(), count=8) == [200] * 8
        victim = worker_pids(process.pid)[0]
        os.kill(victim, signal.SIGKILL)
        statuses, deadline = [], time.monotonic() + 8  # the replacement loads for 1.5-3 s of this
        while time.monotonic() < deadline:
            statuses += post_many(url, fake.image_bytes(), count=16)
        replaced = set(worker_pids(process.pid)) - {victim}
    failed = [status for status in statuses if status != 200]
    assert len(failed) == 0, f"{len(failed)} of {len(statuses)} failed: {sorted(set(map(str, failed)))}"
    assert len(replaced) == 2  # the survivor and the replacement


@pytest.mark.slow
def test_stalled_clients_do_not_block_valid_requests(tmp_path):
    # default threads; 100 clients send a header and part of the body, then stall
    with running_server(tmp_path, SMCV_SERVER_THREADS=None, SMCV_READ_TIMEOUT_S="4") as (url, _, _, fake):
        port = int(url.rsplit(":", 1)[1])
        stalled = []
        try:
            for _ in range(100):
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                             b"Content-Length: 10000\r\n\r\n" + b"\x89PNG" * 25)
                stalled.append(sock)
            time.sleep(0.5)  # let the worker hand them to its threads
            started = time.monotonic()
            statuses = [post_image(url, fake.image_bytes(), timeout=10) for _ in range(10)]
            took = time.monotonic() - started
            answers = [_read_answer(sock, timeout=15) for sock in stalled[:5]]  # dropped after the read timeout
        finally:
            for sock in stalled:
                sock.close()
    assert statuses == [200] * 10 and took < 10
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408") for answer in answers), answers


def _read_answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


@pytest.mark.slow
@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
    # a body whose chunked framing is broken: was a 500 (InvalidChunkSize escaped the body read), found by the fuzz
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\n"
     b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    (b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
])
def test_gunicorn_errors_are_json(server, raw, status):
    url = server[0]
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
        sock.sendall(raw)
        answer = b"".join(iter(lambda: sock.recv(65536), b""))
    head, body = answer.split(b"\r\n\r\n", 1)
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["status"] == status


@pytest.mark.parametrize("env", [{"SAGEMAKER_BIND_TO_PORT": "99999"}, {"SMCV_LOG_LEVEL": "loud"}])
def test_serve_rejects_bad_port_and_log_level_in_one_line(tmp_path, env):
    result = subprocess.run([sys.executable, "-m", "smcv.serving.server"], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, SAGEMAKER_BASE_DIR=str(tmp_path), SMCV_DEVICE="cpu", **env))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and next(iter(env)) in lines[0] and "Traceback" not in result.stderr, result.stderr
