"""Dynamic batching: one background thread per worker joins concurrent requests into model batches."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Optional

import torch

logger = logging.getLogger("smcv.serving")

#: how long the idle batching thread sleeps between checks for a stop request
_IDLE_POLL_S = 0.5


class Batcher:
    """Collects submitted items for up to max_delay_s or max_batch_size items and runs them as one batch.

    run_batch takes the list of items and returns one result per item; a result that is an exception fails only
    its own item (a bad image found in the batched decode), an exception raised fails the whole batch."""

    def __init__(self, run_batch: Callable[[list[Any]], list[Any]], max_batch_size: int = 4,
                 max_delay_s: float = 0.005, name: str = "smcv-batcher") -> None:
        if max_batch_size < 1:
            raise ValueError(f"max batch size must be at least 1, got {max_batch_size}")
        if max_delay_s < 0:
            raise ValueError(f"max batch delay must not be negative, got {max_delay_s}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._queue: "queue.Queue[Optional[tuple[Any, Future]]]" = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "Batcher":
        """Start the batching thread."""
        self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Ask the batching thread to finish and wait for it."""
        self._stop.set()
        self._queue.put(None)  # wake the thread if it is waiting for work
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, item: Any) -> Future:
        """Queue one item; the future resolves to its result (or its own or its batch's exception)."""
        if not self.alive:
            raise RuntimeError("the batching thread is not running")
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                items = self._collect()
                if items:
                    self._run(items)
            except Exception:  # never let the thread die: later requests would hang until their timeout
                logger.exception("batching thread error (continuing)")

    def _collect(self) -> list[tuple[Any, Future]]:
        """Wait for one item, then gather more until the batch is full or the delay has passed."""
        try:
            first = self._queue.get(timeout=_IDLE_POLL_S)
        except queue.Empty:
            return []
        if first is None:  # stop() was called
            return []
        items = [first]
        deadline = time.monotonic() + self.max_delay_s
        while len(items) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                break
            items.append(item)
        return items

    def _run(self, items: list[tuple[Any, Future]]) -> None:
        """Run the items whose callers still wait as one batch; a failing batch fails only its own requests."""
        live = [(item, future) for item, future in items if future.set_running_or_notify_cancel()]
        if not live:  # every caller gave up (timeout) already
            return
        futures = [future for _, future in live]
        try:
            with torch.inference_mode():
                results = list(self.run_batch([item for item, _ in live]))
            if len(results) != len(futures):
                raise RuntimeError(f"the model returned {len(results)} results for a batch of {len(futures)}")
        except Exception as exc:
            logger.exception("inference failed for a batch of %d", len(futures))
            for future in futures:
                future.set_exception(exc)
            return
        for future, result in zip(futures, results):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
