"""Dynamic batching: concurrent items join one batch (any shapes: preprocessing comes after batching), a raised
failure stays in its batch, a returned exception fails only its own item."""

from __future__ import annotations

import threading

import pytest
import torch

from smcv.serving.batching import Batcher


class Recorder:
    """A run_batch that records batch sizes, can hold until released, and fails on a poison value."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.grad_enabled: list[bool] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[torch.Tensor]) -> list[object]:
        self.release.wait()
        self.sizes.append(len(items))
        self.grad_enabled.append(torch.is_grad_enabled())
        if any((item == -1).all() for item in items):
            raise ValueError("poison")
        return [KeyError(f"bad item {float(item.sum())}") if (item == -2).all() else float(item.sum()) for item in items]


@pytest.fixture
def recorder():
    return Recorder()


def test_items_submitted_together_share_a_batch(recorder):
    batcher = Batcher(recorder, max_batch_size=8, max_delay_s=0.25).start()
    try:
        futures = [batcher.submit(torch.full((3, 2, 2), float(i))) for i in range(5)]
        assert [f.result(timeout=30) for f in futures] == [12.0 * i for i in range(5)]
    finally:
        batcher.stop()
    assert recorder.sizes == [5]
    assert recorder.grad_enabled == [False]


def test_batch_size_limit_splits(recorder):
    recorder.release.clear()
    batcher = Batcher(recorder, max_batch_size=2, max_delay_s=0.05).start()
    try:
        futures = [batcher.submit(torch.zeros(1)) for _ in range(5)]
        recorder.release.set()
        for f in futures:
            f.result(timeout=30)
    finally:
        batcher.stop()
    assert max(recorder.sizes) <= 2 and sum(recorder.sizes) == 5


def test_different_shapes_share_one_batch(recorder):
    batcher = Batcher(recorder, max_batch_size=8, max_delay_s=0.25).start()
    try:
        futures = [batcher.submit(torch.ones(3, 4, 4)), batcher.submit(torch.ones(3, 2, 2)),
                   batcher.submit(torch.ones(3, 4, 4))]
        assert [f.result(timeout=30) for f in futures] == [48.0, 12.0, 48.0]
    finally:
        batcher.stop()
    assert recorder.sizes == [3]


def test_a_returned_exception_fails_only_its_item(recorder):
    batcher = Batcher(recorder, max_batch_size=8, max_delay_s=0.25).start()
    try:
        futures = [batcher.submit(torch.ones(2)), batcher.submit(torch.full((2,), -2.0)), batcher.submit(torch.ones(3))]
        assert futures[0].result(timeout=30) == 2.0 and futures[2].result(timeout=30) == 3.0
        with pytest.raises(KeyError, match="bad item -4.0"):
            futures[1].result(timeout=30)
    finally:
        batcher.stop()
    assert recorder.sizes == [3]


def test_a_failing_batch_fails_only_its_requests(recorder):
    recorder.release.clear()
    batcher = Batcher(recorder, max_batch_size=2, max_delay_s=0.2).start()
    try:
        poisoned = [batcher.submit(torch.full((2,), -1.0)), batcher.submit(torch.ones(2))]
        later = batcher.submit(torch.ones(5))  # the next batch (the limit is 2): unaffected
        recorder.release.set()
        for future in poisoned:
            with pytest.raises(ValueError, match="poison"):
                future.result(timeout=30)
        assert later.result(timeout=30) == 5.0
        assert batcher.submit(torch.ones(2)).result(timeout=30) == 2.0  # the thread keeps running
    finally:
        batcher.stop()
    assert batcher.alive is False


def test_wrong_result_count_is_an_error():
    batcher = Batcher(lambda batch: [1.0], max_batch_size=4, max_delay_s=0.2).start()
    try:
        futures = [batcher.submit(torch.ones(1)) for _ in range(2)]
        for future in futures:
            with pytest.raises(RuntimeError, match="2"):
                future.result(timeout=30)
    finally:
        batcher.stop()


def test_cancelled_items_are_skipped(recorder):
    recorder.release.clear()
    batcher = Batcher(recorder, max_batch_size=1, max_delay_s=0).start()
    try:
        first = batcher.submit(torch.ones(1))
        abandoned = batcher.submit(torch.ones(1))
        assert abandoned.cancel()
        recorder.release.set()
        assert first.result(timeout=30) == 1.0
        assert batcher.submit(torch.ones(1)).result(timeout=30) == 1.0
    finally:
        batcher.stop()
    assert recorder.sizes == [1, 1]


def test_invalid_settings_and_submit_before_start(recorder):
    with pytest.raises(ValueError):
        Batcher(recorder, max_batch_size=0)
    with pytest.raises(ValueError):
        Batcher(recorder, max_delay_s=-1)
    with pytest.raises(RuntimeError):
        Batcher(recorder).submit(torch.ones(1))
