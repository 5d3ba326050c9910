"""The real model server (`python -m smcv.serving.server`, gunicorn) on a free loopback port, for tests.

Shared by the integration and reliability tests: start it on a model directory, wait for /ping, find its
workers, add up its memory, and always kill the whole process group at the end.
"""

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
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_WAIT_S = 180  # bounded wait for the workers to import torch, load and warm up


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(url: str, timeout: float = 2.0) -> Optional[int]:
    """GET /ping's status, or None when the server does not answer in time."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):  # refused, reset, timed out (waiting in the backlog while the workers load)
        return None


def wait_until_ready(process: subprocess.Popen, url: str, log: Path, wait_s: float = STARTUP_WAIT_S) -> None:
    """Until /ping answers 200; fails the test with the server log when the server exits or takes too long."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        if ping(url) == 200:
            return
        time.sleep(0.25)
    pytest.fail(f"server not ready after {wait_s} s:\n{log.read_text()}")


def worker_pids(master: int) -> list[int]:
    """The gunicorn workers: the master's child processes."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes added up (VmRSS from /proc; a process that is gone counts 0)."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


@dataclass
class Server:
    """A running server: its URL, port, master process and log file."""

    url: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def workers(self) -> list[int]:
        return worker_pids(self.process.pid)

    def rss(self) -> int:
        """Master + workers resident memory, in bytes."""
        return rss_bytes([self.process.pid, *self.workers])


def server_env(base: Path, port: int, **overrides: Optional[str]) -> dict[str, str]:
    """The environment of a CPU server on `port` serving $base/model; overrides of None unset a variable."""
    env = dict(os.environ, SAGEMAKER_BIND_TO_PORT=str(port), SAGEMAKER_BASE_DIR=str(base),
               SAGEMAKER_MODEL_SERVER_WORKERS="1", SMCV_DEVICE="cpu", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])))
    for name, value in overrides.items():
        env.pop(name, None) if value is None else env.__setitem__(name, value)
    return env


def start_server(env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `python -m smcv.serving.server` in its own session (so that its workers can be killed with it)."""
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "smcv.serving.server"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def stop_server(process: subprocess.Popen) -> None:
    """SIGKILL the master and its workers (its own process group), then reap the master."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


@contextmanager
def serving(base: Path, log: Optional[Path] = None, **env_overrides: Optional[str]) -> Iterator[Server]:
    """A server for the model in $base/model, ready (/ping 200) on entry and killed with its workers on exit."""
    port = free_port()
    log = log or base.parent / "server.log"
    process = start_server(server_env(base, port, **env_overrides), log)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(process, url, log)
        yield Server(url, port, process, log)
    finally:
        stop_server(process)
