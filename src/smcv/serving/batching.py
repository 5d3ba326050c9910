"""Dynamic batching: a background thread per worker joins concurrent requests into model batches; with a prepare
stage, a second thread runs the model on one batch while the first prepares (decodes, resizes) the next."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Optional

import torch

logger = logging.getLogger("smcv.serving")

#: how long an idle batching thread sleeps between checks for a stop request
_IDLE_POLL_S = 0.5
#: prepared batches that may wait for the model: one, so the next is ready when the model finishes the current one,
#: and requests arriving meanwhile join the batch after it instead of waiting behind a long queue
_PREPARED_AHEAD = 1


class Batcher:
    """Collects submitted items for up to max_delay_s or max_batch_size items and runs them as one batch.

    run_batch takes the list of items (or, with `prepare`, what prepare returned for them) and returns one result
    per item; a result that is an exception fails only its own item (a bad image found in the batched decode), an
    exception raised by either stage fails the whole batch. With `prepare`, prepare runs in the collecting thread
    and run_batch in a model thread, so the two stages of consecutive batches overlap."""

    def __init__(self, run_batch: Callable[[Any], list[Any]], max_batch_size: int = 4,
                 max_delay_s: float = 0.005, name: str = "smcv-batcher",
                 prepare: Optional[Callable[[list[Any]], Any]] = None) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max batch size must be at least 1, got {max_batch_size}")
        if max_delay_s < 0:
            raise ValueError(f"max batch delay must not be negative, got {max_delay_s}")
        self.run_batch = run_batch
        self.prepare = prepare
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._queue: "queue.Queue[Optional[tuple[Any, Future]]]" = queue.Queue()
        self._prepared: "queue.Queue[Optional[tuple[list[Future], Any]]]" = queue.Queue(maxsize=_PREPARED_AHEAD)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._collect_loop, name=name, daemon=True)]
        if prepare is not None:
            self._threads.append(threading.Thread(target=self._model_loop, name=f"{name}-model", daemon=True))

    @property
    def overlapped(self) -> bool:
        """Whether preparation and the model run in two threads (a prepare stage was given)."""
        return self.prepare is not None

    def start(self) -> "Batcher":
        """Start the batching thread (and the model thread when preparation is overlapped)."""
        for thread in self._threads:
            thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> None:
        """Ask the batching threads to finish and wait for them."""
        self._stop.set()
        self._queue.put(None)  # wake the collecting thread if it is waiting for work
        try:
            self._prepared.put_nowait(None)  # and the model thread (a full hand-off wakes it anyway)
        except queue.Full:
            pass
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout)
        self._fail_waiting()

    def _fail_waiting(self) -> None:
        """Fail what the stopped threads left queued, so no caller waits for its timeout."""
        for waiting in (self._queue, self._prepared):
            while True:
                try:
                    entry = waiting.get_nowait()
                except queue.Empty:
                    break
                if entry is not None:
                    _refuse_stopping([entry[1]] if waiting is self._queue else entry[0])

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def submit(self, item: Any) -> Future:
        """Queue one item; the future resolves to its result (or its own or its batch's exception)."""
        if not self.alive:
            raise RuntimeError("the batching thread is not running")
        future: Future = Future()
        self._queue.put((item, future))
        return future

    def _collect_loop(self) -> None:
        while not self._stop.is_set():
            try:
                items = self._collect()
                if items:
                    self._dispatch(items)
            except Exception:  # never let the thread die: later requests would hang until their timeout
                logger.exception("batching thread error (continuing)")

    def _model_loop(self) -> None:
        while not self._stop.is_set():
            try:
                handed = self._prepared.get(timeout=_IDLE_POLL_S)
            except queue.Empty:
                continue
            if handed is None:
                continue
            futures, prepared = handed
            try:
                self._settle(futures, lambda: self.run_batch(prepared))
            except Exception:  # as in the collecting thread
                logger.exception("model thread error (continuing)")

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

    def _dispatch(self, items: list[tuple[Any, Future]]) -> None:
        """Run the items whose callers still wait: both stages here, or prepare here and hand over to the model."""
        live = [(item, future) for item, future in items if future.set_running_or_notify_cancel()]
        if not live:  # every caller gave up (timeout) already
            return
        futures = [future for _, future in live]
        batch = [item for item, _ in live]
        if self.prepare is None:
            self._settle(futures, lambda: self.run_batch(batch))
            return
        try:
            with torch.inference_mode():
                prepared = self.prepare(batch)
        except Exception as exc:
            self._fail(futures, exc)
            return
        self._hand_over(futures, prepared)

    def _hand_over(self, futures: list[Future], prepared: Any) -> None:
        """Queue a prepared batch for the model thread, waiting while the one before it still waits there."""
        while not self._stop.is_set():
            try:
                self._prepared.put((futures, prepared), timeout=_IDLE_POLL_S)
                return
            except queue.Full:
                continue
        _refuse_stopping(futures)

    def _settle(self, futures: list[Future], run: Callable[[], list[Any]]) -> None:
        """Run one batch and resolve each future with its own result (or all with the batch's exception)."""
        try:
            with torch.inference_mode():
                results = list(run())
            if len(results) != len(futures):
                raise RuntimeError(f"the model returned {len(results)} results for a batch of {len(futures)}")
        except Exception as exc:
            self._fail(futures, exc)
            return
        for future, result in zip(futures, results):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    @staticmethod
    def _fail(futures: list[Future], exc: Exception) -> None:
        logger.exception("inference failed for a batch of %d", len(futures), exc_info=exc)
        for future in futures:
            future.set_exception(exc)


def _refuse_stopping(futures: list[Future]) -> None:
    """Answer the callers of a stopping batcher at once (a stop is no inference failure: nothing is logged)."""
    for future in futures:
        if future.running() or future.set_running_or_notify_cancel():
            future.set_exception(RuntimeError("the server is stopping"))
