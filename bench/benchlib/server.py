"""A real smcv model server (`python -m smcv.serving.server`, gunicorn) on a free loopback port, for benches."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

SRC = Path(__file__).resolve().parents[2] / "src"


def free_port() -> int:
    """A port nothing listens on, on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(url: str) -> Optional[int]:
    """GET /ping's status, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def server_env(base: Path, port: int, device: str, overrides: dict[str, str]) -> dict[str, str]:
    """The environment of a one-worker server for $base/model on `port`, access log off."""
    env = dict(os.environ, SAGEMAKER_BASE_DIR=str(base), SAGEMAKER_BIND_TO_PORT=str(port), SMCV_DEVICE=device,
               SAGEMAKER_MODEL_SERVER_WORKERS="1", SMCV_ACCESS_LOG="0", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    env.update(overrides)
    return env


@contextmanager
def serving(base: Path, device: str, overrides: dict[str, str], start_timeout_s: float = 300) -> Iterator[str]:
    """The server's URL once /ping answers 200; the server and its workers are killed on exit."""
    port = free_port()
    log = base / f"server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "smcv.serving.server"], stdout=out, stderr=subprocess.STDOUT,
                                   env=server_env(base, port, device, overrides), start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while ping(url) != 200:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
