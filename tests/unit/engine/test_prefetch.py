"""The trainer's one-ahead staging: order, overlap, errors, and the CPU pass-through."""

import pytest
import torch

from smcv.engine.prefetch import Prefetcher, device_tensors, prefetched
from smcv.errors import DataError
from smcv.task_api import OnDevice


class RecordingStreams:
    """Stages by tagging the batch and records the order of stage and hand-over calls."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def stage(self, batch):
        self.events.append(f"stage {batch}")
        return f"ticket {batch}"

    def hand_over(self, ticket):
        batch = ticket.split()[1]
        self.events.append(f"hand {batch}")
        return OnDevice(batch)


class Loader:
    """An iterable of batches that records how far it was read, and can fail at one position."""

    def __init__(self, batches, fail_at=None) -> None:
        self.batches, self.fail_at, self.read = batches, fail_at, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for position, batch in enumerate(self.batches):
            if position == self.fail_at:
                raise DataError(f"bad image in batch {batch}")
            self.read += 1
            yield batch


def test_each_batch_is_staged_before_the_previous_one_is_handed_to_the_step():
    streams = RecordingStreams()
    loader = Loader(["a", "b", "c"])
    handed = []
    for batch in Prefetcher(loader, streams):
        handed.append((batch.inputs, loader.read))
    assert handed == [("a", 2), ("b", 3), ("c", 3)]  # the loader is one batch ahead of the step
    assert streams.events == ["stage a", "stage b", "hand a", "stage c", "hand b", "hand c"]
    assert len(Prefetcher(loader, streams)) == 3


def test_a_loader_error_comes_after_the_batches_before_it():
    streams = RecordingStreams()
    iterator = iter(Prefetcher(Loader(["a", "b", "c"], fail_at=2), streams))
    assert next(iterator).inputs == "a"
    assert next(iterator).inputs == "b"
    with pytest.raises(DataError, match="batch c"):
        next(iterator)
    assert streams.events == ["stage a", "stage b", "hand a", "hand b"]


def test_a_staging_error_comes_after_the_batches_before_it():
    """A JPEG the device cannot decode fails while batch c is staged: a and b still reach the step first."""

    class FailingStreams(RecordingStreams):
        def stage(self, batch):
            if batch == "c":
                raise DataError("broken.jpg: cannot decode image")
            return super().stage(batch)

    handed = []
    with pytest.raises(DataError, match="broken.jpg"):
        for batch in Prefetcher(Loader(["a", "b", "c", "d"]), FailingStreams()):
            handed.append(batch.inputs)
    assert handed == ["a", "b"]


def test_an_empty_loader_and_a_first_batch_error():
    assert list(Prefetcher(Loader([]), RecordingStreams())) == []
    with pytest.raises(DataError, match="batch a"):
        list(Prefetcher(Loader(["a"], fail_at=0), RecordingStreams()))


def test_on_the_cpu_batches_pass_through_unstaged():
    staged = []
    batches = [(torch.zeros(2, 3), torch.ones(2))]
    out = list(prefetched(batches, lambda batch, device: staged.append(batch), torch.device("cpu")))
    assert out[0] is batches[0] and staged == []  # training_loss stages them in line


def test_device_tensors_finds_every_tensor_of_a_staged_batch():
    images, boxes, labels = torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4), torch.zeros(2, 1)
    staged = OnDevice((images, [{"boxes": boxes, "labels": labels}], "meta", 3))
    found = list(device_tensors(staged, torch.device("cpu")))
    assert [id(t) for t in found] == [id(images), id(boxes), id(labels)]
    assert list(device_tensors(staged, torch.device("cuda"))) == []  # CPU tensors are not the step's to keep


def test_staging_a_staged_batch_returns_its_inputs_unchanged():
    """The synthetic ceiling stages once; the trainer's staging of that batch must then do nothing more."""
    from smcv.tasks import get_task

    staged = OnDevice((torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.long)))
    for name in ("classification", "detection", "segmentation"):
        again = get_task(name).stage_batch(staged, torch.device("cpu"))
        assert isinstance(again, OnDevice) and again.inputs is staged.inputs
