"""Start a process and note when each of its stdout lines arrives, up to a deadline, then kill its group."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
import time
from typing import Callable, Optional


def _reader(stream, lines: "queue.Queue[Optional[tuple[float, str]]]") -> None:
    for line in stream:
        lines.put((time.monotonic(), line))
    lines.put(None)


def seconds_to_lines(command: list[str], env: dict[str, str], wanted: dict[str, Callable[[str], bool]],
                     timeout_s: float) -> tuple[dict[str, float], list[str]]:
    """Seconds from the start of `command` to the first line matching each of `wanted`; the process group is
    killed once all were seen, the output ended or timeout_s passed. Also returns the lines read."""
    started = time.monotonic()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    lines: "queue.Queue[Optional[tuple[float, str]]]" = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    found: dict[str, float] = {}
    seen: list[str] = []
    try:
        while len(found) < len(wanted):
            left = started + timeout_s - time.monotonic()
            if left <= 0:
                break
            try:
                item = lines.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                break
            arrived, line = item
            seen.append(line)
            for name, match in wanted.items():
                if name not in found and match(line):
                    found[name] = arrived - started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    return found, seen
