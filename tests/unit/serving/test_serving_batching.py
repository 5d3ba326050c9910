"""Dynamic batching: concurrent items join one batch (any shapes: preprocessing comes after batching), a raised
failure stays in its batch, a returned exception fails only its own item."""

from __future__ import annotations

import threading
import time

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


class TwoStages:
    """A prepare stage (doubles each item, fails on a poison value) and a model stage (sums each prepared item) that
    record which thread ran them; the model can be held until the next batch has been prepared."""

    def __init__(self) -> None:
        self.prepared_batches: list[list[float]] = []
        self.threads: dict[str, set[str]] = {"prepare": set(), "model": set()}
        self.second_prepared = threading.Event()
        self.overlapped: list[bool] = []
        self.hold_first = False

    def prepare(self, items: list[torch.Tensor]) -> list[torch.Tensor]:
        self.threads["prepare"].add(threading.current_thread().name)
        assert not torch.is_grad_enabled()
        if any((item == -1).all() for item in items):
            raise ValueError("poison in prepare")
        self.prepared_batches.append([float(item.sum()) for item in items])
        if len(self.prepared_batches) == 2:
            self.second_prepared.set()
        return [item * 2 for item in items]

    def model(self, prepared: list[torch.Tensor]) -> list[float]:
        self.threads["model"].add(threading.current_thread().name)
        assert not torch.is_grad_enabled()
        if self.hold_first and not self.overlapped:
            # the first batch's model waits until the second batch is prepared: only possible when the two overlap
            self.overlapped.append(self.second_prepared.wait(timeout=20))
        return [float(item.sum()) for item in prepared]


def test_with_a_prepare_stage_the_next_batch_is_prepared_while_the_model_runs():
    stages = TwoStages()
    stages.hold_first = True
    batcher = Batcher(stages.model, max_batch_size=2, max_delay_s=0.05, prepare=stages.prepare).start()
    try:
        assert batcher.overlapped
        first = [batcher.submit(torch.full((2,), float(i))) for i in range(2)]
        time.sleep(0.2)  # the first batch is with the model (held) before the next items arrive
        second = [batcher.submit(torch.full((2,), float(i))) for i in range(2, 4)]
        assert [f.result(timeout=30) for f in first + second] == [0.0, 4.0, 8.0, 12.0]
    finally:
        batcher.stop()
    assert stages.overlapped == [True]  # the second batch was prepared while the first was in the model
    assert stages.threads["prepare"].isdisjoint(stages.threads["model"])  # two threads
    assert stages.prepared_batches == [[0.0, 2.0], [4.0, 6.0]]


def test_without_a_prepare_stage_one_thread_runs_the_batches():
    stages = TwoStages()
    batcher = Batcher(lambda items: stages.model(stages.prepare(items)), max_batch_size=4, max_delay_s=0.05).start()
    try:
        assert not batcher.overlapped
        assert batcher.submit(torch.ones(3)).result(timeout=30) == 6.0
    finally:
        batcher.stop()
    assert stages.threads["prepare"] == stages.threads["model"]


def test_overlapped_callers_each_get_their_own_answer():
    stages = TwoStages()
    batcher = Batcher(stages.model, max_batch_size=4, max_delay_s=0.01, prepare=stages.prepare).start()
    answers: dict[int, float] = {}

    def call(index: int) -> None:
        answers[index] = batcher.submit(torch.full((index + 1,), float(index))).result(timeout=60)

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        batcher.stop()
    assert answers == {i: 2.0 * i * (i + 1) for i in range(40)}
    assert max(len(batch) for batch in stages.prepared_batches) > 1  # they did share batches


def test_a_failing_prepare_fails_only_its_batch():
    stages = TwoStages()
    batcher = Batcher(stages.model, max_batch_size=2, max_delay_s=0.2, prepare=stages.prepare).start()
    try:
        poisoned = [batcher.submit(torch.full((2,), -1.0)), batcher.submit(torch.ones(2))]
        for future in poisoned:
            with pytest.raises(ValueError, match="poison in prepare"):
                future.result(timeout=30)
        assert batcher.submit(torch.ones(2)).result(timeout=30) == 4.0  # both threads keep running
        assert batcher.alive
    finally:
        batcher.stop()
    assert batcher.alive is False


def test_stop_fails_what_is_still_queued():
    release = threading.Event()

    def held(items: list[torch.Tensor]) -> list[float]:
        release.wait(timeout=20)
        return [float(item.sum()) for item in items]

    batcher = Batcher(held, max_batch_size=1, max_delay_s=0).start()
    running = batcher.submit(torch.ones(1))
    time.sleep(0.2)  # the first item is in the model
    queued = [batcher.submit(torch.ones(1)) for _ in range(3)]
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    time.sleep(0.2)
    release.set()
    stopper.join(30)
    assert running.result(timeout=30) == 1.0
    for future in queued:  # answered at once instead of waiting for the request timeout
        with pytest.raises(RuntimeError, match="stopping"):
            future.result(timeout=1)
