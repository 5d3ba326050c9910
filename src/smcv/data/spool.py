"""Pipe mode made random-access: copy a channel's epoch-0 FIFO once into a local RecordIO file."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from smcv.contract import ENV_SPOOL_DIR, Paths
from smcv.data.pipe import is_pipe_mode, iter_channel_records
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


def spool_pipe_channels(channels: dict[str, Path], channel_config: dict[str, dict],
                        names: tuple[str, ...] = ("train", "validation")) -> dict[str, Path]:
    """The one Pipe-mode decision: each named Pipe-mode channel spooled once, canonical name -> local .rec file.

    The FIFO is named after the channel's folder (e.g. 'training_0' for the canonical 'train')."""
    spooled: dict[str, Path] = {}
    for name in names:
        if is_pipe_mode(channel_config.get(name, {})):
            fifo = Path(channels[name]).name if name in channels else name
            spooled[name] = spool_pipe_channel(Paths.from_env(), fifo)
    return spooled
