"""A real `python -m smcv.train` process: start it, read its log until a line shows up, stop it with SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from typing import Callable

WAIT_SECONDS = 300  # bounded wait for one training run (or for the line to stop it at)
_METRICS = re.compile(r"^#metrics epoch=(\d+);")


def start_training(env: dict) -> subprocess.Popen:
    """`python -m smcv.train` with stdout and stderr merged into one text pipe."""
    return subprocess.Popen([sys.executable, "-m", "smcv.train"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def sigterm_when(proc: subprocess.Popen, when: Callable[[str], bool], wait_s: float = WAIT_SECONDS) -> str:
    """Read the log until a line satisfies `when` (or wait_s passes, or the log ends), send SIGTERM, wait for the
    exit; returns the whole log. The caller checks proc.returncode."""
    seen, deadline = [], time.monotonic() + wait_s
    try:
        for line in proc.stdout:
            seen.append(line)
            if when(line) or time.monotonic() > deadline:
                break
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=wait_s)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return "".join(seen) + (rest or "")


def run_training(env: dict, wait_s: float = WAIT_SECONDS) -> subprocess.CompletedProcess:
    """One training run to its end; stdout and stderr merged into .stdout."""
    return subprocess.run([sys.executable, "-m", "smcv.train"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=wait_s)


def metric_epochs(log: str) -> list[int]:
    """The epochs that finished in this log (its `#metrics epoch=N;...` lines), in order."""
    return [int(match.group(1)) for line in log.splitlines() if (match := _METRICS.match(line))]
