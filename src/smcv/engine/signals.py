"""SIGTERM/SIGINT handling: set a flag the loop checks between steps, so it can checkpoint and exit cleanly."""

from __future__ import annotations

import logging
import signal
import threading

log = logging.getLogger(__name__)


class StopRequest:
    """A flag set by SIGTERM (SageMaker StopTrainingJob, spot interruption, docker stop) or SIGINT."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name = ""

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
            log.warning("second %s: stopping now", name)
            raise SystemExit(128 + signum)
        log.warning("%s received: finishing the current step, saving a checkpoint and the model", name)
        self.request(name)
