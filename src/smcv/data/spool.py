"""Pipe mode made random-access: copy a channel's epoch-0 FIFO once into a local RecordIO file."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from smcv.contract import ENV_SPOOL_DIR, Paths
from smcv.data.pipe import iter_channel_records
from smcv.data.recordio import RecordWriter

log = logging.getLogger(__name__)


def spool_dir() -> Path:
    """Where spooled channels go (local disk; $SMCV_SPOOL_DIR or the temp dir)."""
    return Path(os.environ.get(ENV_SPOOL_DIR) or tempfile.gettempdir()) / "smcv-spool"


def spool_pipe_channel(paths: Paths, channel: str) -> Path:
    """Read `<channel>_0` to its end into `<spool>/<channel>/<channel>.rec` (+ .idx) and return the .rec path."""
    target = spool_dir() / channel
    target.mkdir(parents=True, exist_ok=True)
    rec, idx = target / f"{channel}.rec", target / f"{channel}.idx"
    count = 0
    with RecordWriter(rec, idx) as writer:
        for count, record in enumerate(iter_channel_records(paths, channel, 0), start=1):
            writer.write(record, key=count - 1)
    log.info("Pipe mode: spooled %d records of channel %r to %s; later epochs read the local copy", count, channel, rec)
    return rec
