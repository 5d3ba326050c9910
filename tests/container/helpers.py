"""Helpers for the container tests (Docker CLI, fake /opt/ml, HTTP); fixtures are in conftest.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[2]
LOCAL_TEST = REPO / "local_test"
ENABLE_ENV = "SMCV_CONTAINER_TESTS"
TASKS = tuple((REPO / "containers" / "tasks.txt").read_text().split())  # = smcv.tasks.TASKS (tests/unit/test_tasks.py)


def docker_cli() -> str:
    return os.environ.get("DOCKER", "docker")


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run the docker CLI; output captured as text."""
    result = subprocess.run([docker_cli(), *args], capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_opt_ml(base: Path, **overrides) -> Path:
    """local_test/test_dir's config plus a freshly generated sample, under base; hyperparameters overridden."""
    shutil.copytree(LOCAL_TEST / "test_dir" / "input" / "config", base / "input" / "config")
    subprocess.run([sys.executable, str(LOCAL_TEST / "make_sample.py"), "--out", str(base),
                    "--payload", str(base / "payload.png")], check=True, capture_output=True)
    hp_file = base / "input" / "config" / "hyperparameters.json"
    hps = json.loads(hp_file.read_text())
    hps.update({k: str(v) for k, v in overrides.items()})
    hp_file.write_text(json.dumps(hps))
    return base


def run_container(image: str, opt_ml: Path, *args: str, env: Optional[dict] = None, timeout: float = 600,
                  extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """docker run --rm -v opt_ml:/opt/ml IMAGE ARGS... in the foreground, as host algo-1 (as on SageMaker,
    whose resourceconfig.json names the hosts; the toolkit waits until they resolve). Removed on timeout."""
    name = f"smcv-test-{uuid.uuid4().hex[:10]}"
    env_args = [a for k, v in (env or {}).items() for a in ("-e", f"{k}={v}")]
    try:
        return docker("run", "--rm", "--name", name, "--hostname", "algo-1", "--shm-size=1g",
                      "-v", f"{opt_ml}:/opt/ml", *env_args, *extra, image, *args, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        logs = docker("logs", "--tail", "50", name, check=False)
        docker("rm", "-f", name, check=False)
        raise AssertionError(f"container ran longer than {timeout:.0f} s; last log lines:\n{logs.stdout}{logs.stderr}")


def http(method: str, url: str, body: Optional[bytes] = None, headers: Optional[dict] = None,
         timeout: float = 10) -> tuple[int, bytes, str]:
    """(status, body, content type) of one request; HTTP errors are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def wait_for_ping(port: int, timeout: float = 180, container: Optional[str] = None) -> float:
    """Seconds until GET /ping answers 200; fails with the container log if it never does."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if http("GET", f"http://127.0.0.1:{port}/ping", timeout=2)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        if container and docker("inspect", "-f", "{{.State.Running}}", container, check=False).stdout.strip() == "false":
            break
        time.sleep(0.5)
    logs = docker("logs", container, check=False) if container else None
    raise AssertionError(f"/ping on port {port} did not answer 200 within {timeout:.0f} s"
                         + (f"\n{logs.stdout}\n{logs.stderr}" if logs else ""))
