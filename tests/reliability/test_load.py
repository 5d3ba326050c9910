"""Sustained load on the real server (gunicorn, 2 workers, tiny classification model): no errors and no memory
growth; and a worker SIGKILLed under load costs < 1 % of the requests, with the server answering again in < 5 s."""

from __future__ import annotations

import http.client
import io
import os
import signal
import threading
import time
from pathlib import Path
from dataclasses import dataclass, field

import numpy as np
import pytest
from PIL import Image

from tests.helpers.exportmodels import write_tiny_model
from tests.helpers.figures import report
from tests.helpers.servers import Server, ping, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SERVER_ENV = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SMCV_ACCESS_LOG": "0"}
ANSWER_LIMIT_S = 30.0
RSS_GROWTH_LIMIT = 0.10
RECOVERY_LIMIT_S = 5.0
FAILED_LIMIT = 0.01


@dataclass
class Load:
    """Clients that each keep one connection and post images back to back until stopped; every request is
    recorded as (start, end, status or exception name)."""

    port: int
    concurrency: int
    bodies: list[bytes]
    records: list[tuple[float, float, object]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Load":
        for client in range(self.concurrency):
            thread = threading.Thread(target=self._client, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(ANSWER_LIMIT_S + 10)

    def _client(self, client: int) -> None:
        conn = None
        sent = client
        while not self._stop.is_set():
            body = self.bodies[sent % len(self.bodies)]
            sent += 1
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=ANSWER_LIMIT_S + 5)
                conn.request("POST", "/invocations", body, {"Content-Type": "application/x-image",
                                                            "Accept": "application/json"})
                response = conn.getresponse()
                response.read()
                status: object = response.status
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            self.records.append((started, time.monotonic(), status))
        if conn is not None:
            conn.close()

    def between(self, start: float, end: float) -> list[tuple[float, float, object]]:
        return [r for r in self.records if start <= r[0] < end]


def images(count: int = 8, seed: int = 5) -> list[bytes]:
    """JPEG and PNG noise images from 24 to 400 px a side."""
    rng = np.random.default_rng(seed)
    out = []
    for index in range(count):
        side = int(24 + (400 - 24) * index / max(1, count - 1))
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (side, side * 3 // 4 + 1, 3), dtype=np.uint8)).save(
            buffer, format="JPEG" if index % 2 else "PNG")
        out.append(buffer.getvalue())
    return out


def summary(records: list[tuple[float, float, object]]) -> dict:
    statuses: dict[str, int] = {}
    for _, _, status in records:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    latencies = sorted(end - start for start, end, _ in records) or [0.0]
    return {"requests": len(records), "by_status": dict(sorted(statuses.items())),
            "errors": sum(1 for _, _, status in records if status != 200),
            "max_latency_s": round(latencies[-1], 3), "p50_latency_s": round(latencies[len(latencies) // 2], 3),
            "p99_latency_s": round(latencies[int(len(latencies) * 0.99)], 3)}


@pytest.mark.parametrize("concurrency, warmup_s, duration_s", [
    pytest.param(16, 3, 10, id="quick"),
    pytest.param(64, 10, 60, id="long", marks=pytest.mark.reliability_long),
])
def test_sustained_load_no_errors_no_memory_growth(tmp_path, concurrency, warmup_s, duration_s):
    write_tiny_model("classification", tmp_path / "ml" / "model")
    with serving(tmp_path / "ml", tmp_path / "server.log", **SERVER_ENV) as server:
        _load(server, concurrency, warmup_s, duration_s)


def _load(server: Server, concurrency: int, warmup_s: float, duration_s: float) -> None:
    workers = sorted(server.workers)
    load = Load(server.port, concurrency, images()).start()
    try:
        time.sleep(warmup_s)
        measured_from, rss_before = time.monotonic(), server.rss()
        time.sleep(duration_s)
        measured_to, rss_after = time.monotonic(), server.rss()
    finally:
        load.stop()
    records = load.between(measured_from, measured_to)
    figures = summary(records)
    growth = (rss_after - rss_before) / rss_before
    report({"test": "load", "task": "classification", "workers": len(workers), "concurrency": concurrency,
            "warmup_s": warmup_s, "duration_s": duration_s, **figures,
            "requests_per_s": round(len(records) / (measured_to - measured_from), 1),
            "rss_before_mb": round(rss_before / 2**20, 1), "rss_after_mb": round(rss_after / 2**20, 1),
            "rss_growth": round(growth, 4), "worker_deaths": len(set(workers) - set(server.workers))})
    assert figures["errors"] == 0, figures
    assert figures["max_latency_s"] <= ANSWER_LIMIT_S, figures
    assert sorted(server.workers) == workers
    assert growth <= RSS_GROWTH_LIMIT, f"RSS grew {growth:.1%}: {rss_before} -> {rss_after} bytes"


def _watch_replacement(server: Server, victim: int, workers: int, killed_at: float, found: dict,
                       give_up: float) -> None:
    """Note when the master has started a replacement worker and when that one has warmed up (its log line)."""
    warmed = server.log.read_text().count("warm-up done")
    while time.monotonic() < give_up and "ready_s" not in found:
        try:
            pids = server.workers
        except OSError:
            pids = []
        if "spawned_s" not in found and victim not in pids and len(pids) == workers:
            found["spawned_s"] = time.monotonic() - killed_at
        if server.log.read_text().count("warm-up done") > warmed:
            found["ready_s"] = time.monotonic() - killed_at
        time.sleep(0.05)


def _dead_at(pid: int, limit_s: float = 10.0) -> float:
    """The monotonic time at which a SIGKILLed process is gone, or a zombie whose threads have all exited. The main
    thread turns zombie first; the others still hold the sockets (keep-alive connections accepted by the worker)
    until the last one exits, and a request written to such a connection meanwhile is reset with it."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            threads = os.listdir(f"/proc/{pid}/task")
        except (OSError, IndexError):
            return time.monotonic()
        if state in ("Z", "X") and threads == [str(pid)]:
            return time.monotonic()
        time.sleep(0.0005)
    raise AssertionError(f"worker {pid} still runs {limit_s} s after SIGKILL")


@pytest.mark.parametrize("workers, concurrency, before_s, after_s", [
    pytest.param(2, 4, 4, 8, id="quick"),
    pytest.param(2, 32, 10, 30, id="long", marks=pytest.mark.reliability_long),
    # one worker: nobody answers until the replacement has loaded; measured, the 5 s bound is not asserted
    pytest.param(1, 32, 10, 30, id="long-one-worker", marks=pytest.mark.reliability_long),
])
def test_worker_sigkill_under_load(tmp_path, workers, concurrency, before_s, after_s):
    """Requests in flight on the killed worker are lost with it (they cannot be answered): the failed share is at
    most the concurrency over the requests sent, and no request sent after the kill may fail."""
    write_tiny_model("classification", tmp_path / "ml" / "model")
    with serving(tmp_path / "ml", tmp_path / "server.log", **{**SERVER_ENV,
                 "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers)}) as server:
        _kill_one_worker_under_load(server, workers, concurrency, before_s, after_s)


def _kill_one_worker_under_load(server: Server, workers: int, concurrency: int, before_s: float,
                                after_s: float) -> None:
    pids = sorted(server.workers)
    victim, survivors = pids[0], pids[1:]
    load = Load(server.port, concurrency, images()).start()
    replacement: dict = {}
    try:
        time.sleep(before_s)
        os.kill(victim, signal.SIGKILL)
        killed_at = _dead_at(victim)  # requests sent while its threads are torn down die with it, like in-flight ones
        watcher = threading.Thread(target=_watch_replacement,
                                   args=(server, victim, workers, killed_at, replacement, killed_at + after_s + 60))
        watcher.start()
        time.sleep(after_s)
        ended = time.monotonic()
    finally:
        load.stop()
    watcher.join(90)
    answering = ping(server.url, timeout=10)
    records = load.between(0, ended)
    figures = summary(records)
    after = sorted((r for r in records if r[0] >= killed_at and r[2] == 200), key=lambda r: r[1])
    recovery_s = after[0][1] - killed_at if after else None
    failed = [r for r in records if r[2] != 200]
    failed_after_kill = [r for r in failed if r[0] >= killed_at]
    report({"test": "sigkill", "task": "classification", "workers": workers, "concurrency": concurrency,
            "load_before_kill_s": before_s, "load_after_kill_s": after_s, **figures,
            "failed_share": round(len(failed) / max(1, len(records)), 4),
            "failed_sent_after_kill": len(failed_after_kill),
            "recovery_s": None if recovery_s is None else round(recovery_s, 3),
            "replacement_spawned_s": round(replacement.get("spawned_s", -1), 2),
            "replacement_ready_s": round(replacement.get("ready_s", -1), 2),
            "workers_after": len(server.workers)})
    assert len(failed) < FAILED_LIMIT * len(records), figures
    assert not failed_after_kill, failed_after_kill[:10]
    assert recovery_s is not None, "no request succeeded after the kill"
    if workers > 1:  # the contract: the surviving workers answer at once; with one, the replacement's load time
        assert recovery_s < RECOVERY_LIMIT_S, recovery_s
    assert figures["max_latency_s"] <= ANSWER_LIMIT_S, figures
    assert answering == 200 and set(survivors) <= set(server.workers) and len(server.workers) == workers
    assert "ready_s" in replacement, server.log.read_text()[-3000:]
