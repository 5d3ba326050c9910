"""The job's input channels as smcv.train decides them, once: the channel folders, their inputdataconfig.json
entries, the local copy of each Pipe-mode split, and an smcv model given in the `model` channel."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Optional

from smcv.data.spool import spool_pipe_channels
from smcv.pretrained import model_channel_artifact


class ChannelInputs(dict):
    """Channel name -> folder (a dict, so tasks index it as before), with the decisions made about the channels."""

    def __init__(self, folders: Mapping[str, Path], config: Optional[Mapping[str, dict]] = None,
                 pipe: Optional[Mapping[str, Path]] = None, model_artifact: Optional[Path] = None) -> None:
        super().__init__(folders)
        self.config: dict[str, dict] = dict(config or {})  # canonical channel name -> inputdataconfig.json entry
        self.pipe: dict[str, Path] = dict(pipe or {})  # Pipe-mode split -> its spooled local .rec file
        self.model_artifact = model_artifact  # the folder of an smcv model in the `model` channel (incremental)

    def spooled(self) -> "ChannelInputs":
        """These inputs with every Pipe-mode split copied to local disk (reads the FIFOs: call once, after the checks
        that must come before any data is read)."""
        return ChannelInputs(self, self.config, spool_pipe_channels(dict(self), self.config), self.model_artifact)


def read_inputs(folders: Mapping[str, Path], config: Mapping[str, dict]) -> ChannelInputs:
    """The decisions that read no data: the channels' config and an smcv model in the `model` channel."""
    return ChannelInputs(folders, config, model_artifact=model_channel_artifact(folders.get("model")))


def channel_inputs(channels: Mapping[str, Path], config: Optional[Mapping[str, dict]] = None) -> ChannelInputs:
    """The inputs smcv.train decided; a plain mapping (a caller outside smcv.train, e.g. a test) is decided here."""
    if isinstance(channels, ChannelInputs):
        return channels
    return read_inputs(channels, config or {}).spooled()
