"""Pipe input mode: one FIFO per channel and epoch, ``/opt/ml/input/data/<channel>_<epoch>``, read to its end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import BinaryIO

from smcv.contract import Paths
from smcv.data.recordio import iter_records
from smcv.errors import DataError

DEFAULT_WAIT_SECONDS = 300.0
POLL_SECONDS = 0.1
BUFFER_BYTES = 1 << 20


def is_pipe_mode(channel_config: dict) -> bool:
    """Whether an inputdataconfig.json channel entry uses TrainingInputMode Pipe."""
    return str(channel_config.get("TrainingInputMode", "")).strip().lower() == "pipe"


def open_pipe(paths: Paths, channel: str, epoch: int, wait_seconds: float = DEFAULT_WAIT_SECONDS) -> BinaryIO:
    """Open the channel's FIFO for an epoch, polling until SageMaker creates it (DataError after wait_seconds)."""
    path = paths.pipe_path(channel, epoch)
    deadline = time.monotonic() + wait_seconds
    while not path.exists():
        if time.monotonic() >= deadline:
            raise DataError(f"Pipe-mode input {path} did not appear within {wait_seconds:g} s; check that channel "
                            f"{channel!r} is configured with TrainingInputMode 'Pipe'")
        time.sleep(POLL_SECONDS)
    return open(path, "rb", buffering=BUFFER_BYTES)


def iter_channel_records(
    paths: Paths, channel: str, epoch: int, wait_seconds: float = DEFAULT_WAIT_SECONDS
) -> Iterator[bytes]:
    """Yield the RecordIO records of one epoch of a Pipe-mode channel."""
    with open_pipe(paths, channel, epoch, wait_seconds) as stream:
        yield from iter_records(stream, str(paths.pipe_path(channel, epoch)))
