"""Tests for smcv.data.pipe: FIFOs that appear late, one per epoch."""

from __future__ import annotations

import os
import threading
import time

import pytest

from smcv.contract import Paths
from smcv.data import pipe
from smcv.data.pipe import is_pipe_mode, iter_channel_records, open_pipe
from smcv.data.recordio import MAGIC_BYTES, RecordWriter
from smcv.errors import DataError


def test_is_pipe_mode():
    assert is_pipe_mode({"TrainingInputMode": "Pipe"})
    assert not is_pipe_mode({"TrainingInputMode": "File"})
    assert not is_pipe_mode({})


def test_reads_fifo_created_late(tmp_path):
    paths = Paths(tmp_path)
    paths.data_dir.mkdir(parents=True)
    payloads = [b"one", MAGIC_BYTES + b"two", b""]
    with RecordWriter(tmp_path / "src.rec") as w:
        for p in payloads:
            w.write(p)
    data = (tmp_path / "src.rec").read_bytes()

    def feed() -> None:
        time.sleep(0.2)  # the reader is already polling for the FIFO
        fifo = paths.pipe_path("train", 1)
        os.mkfifo(fifo)
        with open(fifo, "wb") as out:
            for i in range(0, len(data), 5):
                out.write(data[i:i + 5])
                out.flush()

    thread = threading.Thread(target=feed)
    thread.start()
    got = list(iter_channel_records(paths, "train", 1, wait_seconds=60))
    thread.join()
    assert got == payloads


def test_missing_fifo_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(pipe, "POLL_SECONDS", 0.01)
    with pytest.raises(DataError, match=r"train_0 did not appear within 0.05 s.*TrainingInputMode 'Pipe'"):
        open_pipe(Paths(tmp_path), "train", 0, wait_seconds=0.05)
