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
    """Collects submitted CHW tensors for up to max_delay_s or max_batch_size items, runs them as one batch."""

    def __init__(self, run_batch: Callable[[torch.Tensor], list[Any]], max_batch_size: int = 4,
                 max_delay_s: float = 0.005, name: str = "smcv-batcher") -> None:
        if max_batch_size < 1:
            raise ValueError(f"max batch size must be at least 1, got {max_batch_size}")
        if max_delay_s < 0:
            raise ValueError(f"max batch delay must not be negative, got {max_delay_s}")
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._queue: "queue.Queue[Optional[tuple[torch.Tensor, Future]]]" = queue.Queue()
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

    def submit(self, tensor: torch.Tensor) -> Future:
        """Queue one preprocessed item; the future resolves to its result (or its batch's exception)."""
        if not self.alive:
            raise RuntimeError("the batching thread is not running")
        future: Future = Future()
        self._queue.put((tensor, future))
        return future

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                items = self._collect()
                if items:
                    self._run_grouped(items)
            except Exception:  # never let the thread die: later requests would hang until their timeout
                logger.exception("batching thread error (continuing)")

    def _collect(self) -> list[tuple[torch.Tensor, Future]]:
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

    def _run_grouped(self, items: list[tuple[torch.Tensor, Future]]) -> None:
        """Run items of the same shape and dtype together; a failing group fails only its own requests."""
        groups: dict[tuple, list[tuple[torch.Tensor, Future]]] = {}
        for tensor, future in items:
            if future.set_running_or_notify_cancel():  # False: the caller gave up (timeout) already
                groups.setdefault((tuple(tensor.shape), tensor.dtype), []).append((tensor, future))
        for group in groups.values():
            self._run_group(group)

    def _run_group(self, group: list[tuple[torch.Tensor, Future]]) -> None:
        futures = [future for _, future in group]
        try:
            with torch.inference_mode():
                batch = torch.stack([tensor for tensor, _ in group])
                results = list(self.run_batch(batch))
            if len(results) != len(futures):
                raise RuntimeError(f"the model returned {len(results)} results for a batch of {len(futures)}")
        except Exception as exc:
            logger.exception("inference failed for a batch of %d", len(futures))
            for future in futures:
                future.set_exception(exc)
            return
        for future, result in zip(futures, results):
            future.set_result(result)
