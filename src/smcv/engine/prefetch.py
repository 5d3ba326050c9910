"""Training batches staged one ahead: on a GPU the next batch's copy to the device and its augmentation there run on
a side CUDA stream while the current step's kernels run, and each batch reaches the step already on the device."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Optional, Protocol

import torch

from smcv.task_api import OnDevice

Stage = Callable[[Any, torch.device], Any]


class Streams(Protocol):
    """Where staging runs and how a staged batch is handed to the training step."""

    def stage(self, batch: Any) -> Any:
        """Start staging one collated batch (asynchronously where the device allows); returns a ticket."""

    def hand_over(self, ticket: Any) -> Any:
        """The staged batch of a ticket, ready for the training step's stream."""


class CudaStreams:
    """Stages on a side CUDA stream; the step's stream waits for that batch's event only (not the next one's). The
    sources are pinned host tensors (DataLoader pin_memory), so the side stream waits for nothing of the step's."""

    def __init__(self, stage: Stage, device: torch.device) -> None:
        self.run, self.device = stage, device
        self.side = torch.cuda.Stream(device)

    def stage(self, batch: Any) -> tuple[Any, torch.cuda.Event]:
        with torch.cuda.stream(self.side):
            staged = self.run(batch, self.device)
            done = torch.cuda.Event()
            done.record(self.side)
        return staged, done

    def hand_over(self, ticket: tuple[Any, torch.cuda.Event]) -> Any:
        staged, done = ticket
        current = torch.cuda.current_stream(self.device)
        current.wait_event(done)
        for tensor in device_tensors(staged, self.device):
            tensor.record_stream(current)  # made on the side stream, freed after the step's use: keep it until then
        return staged


def device_tensors(value: Any, device: torch.device) -> Iterator[torch.Tensor]:
    """Every tensor on `device` inside a staged batch (tensors, OnDevice, tuples, lists, dicts)."""
    if isinstance(value, torch.Tensor):
        if value.device.type == device.type:
            yield value
    elif isinstance(value, OnDevice):
        yield from device_tensors(value.inputs, device)
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from device_tensors(item, device)
    elif isinstance(value, dict):
        for item in value.values():
            yield from device_tensors(item, device)


class Prefetcher:
    """Iterates a loader with each batch staged (Streams.stage) before the previous one is handed to the step, so
    staging overlaps the step; a loader or staging error is raised after the batches before it were handed over."""

    def __init__(self, loader: Iterable, streams: Optional[Streams]) -> None:
        self.loader, self.streams = loader, streams

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        if self.streams is None:
            yield from self.loader
            return
        batches = iter(self.loader)
        try:
            ticket = self.streams.stage(next(batches))
        except StopIteration:
            return
        while True:
            try:
                ahead = self.streams.stage(next(batches))
            except StopIteration:
                yield self.streams.hand_over(ticket)
                return
            except BaseException:  # a bad batch (loader or staging) fails after the batches before it trained
                yield self.streams.hand_over(ticket)
                raise
            yield self.streams.hand_over(ticket)
            ticket = ahead


def prefetched(loader: Iterable, stage: Stage, device: torch.device) -> Prefetcher:
    """`loader` staged one batch ahead on a GPU; elsewhere the collated batches as they come (training_loss stages
    them in line, as before)."""
    return Prefetcher(loader, CudaStreams(stage, device) if device.type == "cuda" else None)
