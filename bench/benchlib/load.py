"""Closed-loop HTTP load on loopback: `concurrency` keep-alive connections, each sending the next request when the
last answer arrived, spread over forked client processes; bounded by a request count and a time limit."""

from __future__ import annotations

import http.client
import multiprocessing
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class LoadResult:
    """Latencies (seconds) of the answered requests, errors, and the measured window."""

    latencies: list[float]
    errors: int
    seconds: float

    @property
    def per_s(self) -> float:
        """Answered requests per second (one image per request)."""
        return len(self.latencies) / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        """The q-th percentile of the latencies in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return 1000 * ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _connection(url: str) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)


def _send(conn: http.client.HTTPConnection, body: bytes, headers: dict[str, str]) -> int:
    conn.request("POST", "/invocations", body=body, headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def _client(url: str, body: bytes, headers: dict[str, str], requests: int, deadline: float,
            out: list[tuple[float, float]], errors: list[int]) -> None:
    """One connection: a warm-up request, then up to `requests` timed ones until the deadline."""
    conn = _connection(url)
    try:
        _send(conn, body, headers)
        for _ in range(requests):
            if time.monotonic() > deadline:
                break
            start = time.monotonic()
            try:
                status = _send(conn, body, headers)
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = _connection(url)
                status = 0
            end = time.monotonic()
            if status == 200:
                out.append((start, end))
            else:
                errors.append(status)
    finally:
        conn.close()


def _process(url: str, body: bytes, headers: dict[str, str], threads: int, requests: int,
             deadline: float) -> tuple[list[tuple[float, float]], int]:
    """`threads` connections in one client process; (start, end) of every answered request and the error count."""
    spans: list[tuple[float, float]] = []
    errors: list[int] = []
    share = [requests // threads + (1 if i < requests % threads else 0) for i in range(threads)]
    workers = [threading.Thread(target=_client, args=(url, body, headers, n, deadline, spans, errors))
               for n in share]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return spans, len(errors)


def run_load(url: str, body: bytes, content_type: str, concurrency: int, requests: int, time_limit_s: float,
             processes: int = 1) -> LoadResult:
    """`requests` POST /invocations over `concurrency` connections in at most `processes` forked clients."""
    processes = max(1, min(processes, concurrency))
    headers = {"Content-Type": content_type, "Accept": "*/*"}
    deadline = time.monotonic() + time_limit_s
    threads = [concurrency // processes + (1 if i < concurrency % processes else 0) for i in range(processes)]
    counts = [requests * t // concurrency for t in threads]
    jobs = [(url, body, headers, t, n, deadline) for t, n in zip(threads, counts)]
    if processes == 1:
        results = [_process(*jobs[0])]
    else:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            results = pool.starmap(_process, jobs)
    spans = [span for found, _ in results for span in found]
    errors = sum(count for _, count in results)
    if not spans:
        return LoadResult([], errors, 0.0)
    window = max(end for _, end in spans) - min(start for start, _ in spans)
    return LoadResult([end - start for start, end in spans], errors, window)
