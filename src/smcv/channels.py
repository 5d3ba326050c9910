"""Input channels: names from inputdataconfig.json and the data folder, with the usual aliases resolved."""

from __future__ import annotations

import logging
from pathlib import Path

from smcv.contract import Paths

log = logging.getLogger(__name__)

#: alternative channel names users (and SDK defaults) give, mapped to the built-in names
ALIASES = {"training": "train", "val": "validation", "valid": "validation", "training_lst": "train_lst",
           "val_lst": "validation_lst", "training_annotation": "train_annotation", "val_annotation": "validation_annotation"}


def discover_channels(paths: Paths, channel_config: dict[str, dict]) -> dict[str, Path]:
    """Channel name to its folder: channels in inputdataconfig.json plus folders under input/data."""
    names = list(channel_config)
    if paths.data_dir.is_dir():
        names += [p.name for p in sorted(paths.data_dir.iterdir()) if p.is_dir() and p.name not in names]
    channels: dict[str, Path] = {}
    for name in names:
        canonical = ALIASES.get(name, name)
        if canonical in channels or (canonical != name and canonical in names):
            channels.setdefault(name, paths.channel_dir(name))
            continue
        if canonical != name:
            log.info("using channel %r as %r", name, canonical)
        channels[canonical] = paths.channel_dir(name)
    return channels


def canonical_config(channel_config: dict[str, dict]) -> dict[str, dict]:
    """inputdataconfig.json entries keyed by canonical channel name."""
    out: dict[str, dict] = {}
    for name, config in channel_config.items():
        out.setdefault(ALIASES.get(name, name), config)
    return out
