"""ChannelInputs: the channels decided once (config, Pipe splits spooled once, the `model` channel's artifact)."""

from __future__ import annotations

import torch

from smcv import artifact, inputs
from smcv.inputs import ChannelInputs, channel_inputs, read_inputs


def test_decided_inputs_pass_through_without_a_second_decision(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(inputs, "spool_pipe_channels", lambda folders, config: calls.append(1) or {"train": tmp_path})
    decided = read_inputs({"train": tmp_path}, {"train": {"TrainingInputMode": "Pipe"}})
    assert calls == []  # reading the config and the model channel reads no data
    spooled = decided.spooled()
    assert calls == [1] and spooled.pipe == {"train": tmp_path} and spooled["train"] == tmp_path
    assert channel_inputs(spooled) is spooled and calls == [1]


def test_a_plain_mapping_is_decided_where_it_is_used(tmp_path):
    plain = channel_inputs({"train": tmp_path})
    assert isinstance(plain, ChannelInputs) and plain.pipe == {} and plain.model_artifact is None


def test_the_model_channel_artifact_is_found_once(tmp_path):
    model_dir = tmp_path / "model"
    artifact.save_artifact(model_dir, {"w": torch.ones(1)}, {"task": "classification"})
    decided = read_inputs({"model": model_dir}, {})
    assert decided.model_artifact == model_dir
