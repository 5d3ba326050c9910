"""SIGTERM/SIGINT handling: set a flag the loop checks between steps, so it can checkpoint and exit cleanly."""

from __future__ import annotations

import logging
import signal
import threading
import time

log = logging.getLogger(__name__)


class StopRequest:
    """A flag set by SIGTERM (SageMaker StopTrainingJob, spot interruption, docker stop) or SIGINT."""

    #: a repeated signal within this many seconds is the same stop (tini -g and torchrun both forward SIGTERM)
    REPEAT_GRACE_S = 10.0

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""
        self._first_at = 0.0

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def request(self, name: str = "request") -> None:
        """Ask the loop to stop at the next step boundary."""
        self.signal_name = name
        self._event.set()

    def install(self) -> "StopRequest":
        """Install handlers for SIGTERM and SIGINT (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if self.requested:
            if time.monotonic() - self._first_at < self.REPEAT_GRACE_S:
                return
            log.warning("second %s: stopping now", name)
            raise SystemExit(128 + signum)
        log.warning("%s received: finishing the current step, saving a checkpoint and the model", name)
        self._first_at = time.monotonic()
        self.request(name)
