"""Pretrained weights: where they are found, how they are read and partially loaded; the model channel artifact."""

from __future__ import annotations

import tarfile

import pytest
import torch

from smcv import artifact
from smcv.contract import ENV_WEIGHTS_DIR
from smcv.errors import ConfigError
from smcv.pretrained import (find_pretrained, imagenet_need, load_matching, model_channel_artifact, read_state_dict,
                             resolve_weights)


def net() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))


def test_channel_before_baked_in_and_names_matched(tmp_path, monkeypatch):
    baked = tmp_path / "baked"
    baked.mkdir()
    torch.save({}, baked / "resnet50-0676ba61.pth")
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(baked))
    assert find_pretrained(["resnet50"], {}) == baked / "resnet50-0676ba61.pth"
    channel = tmp_path / "pretrained"
    channel.mkdir()
    torch.save({}, channel / "anything.pt")
    assert find_pretrained(["resnet50"], {"pretrained": channel}) == channel / "anything.pt"  # the only file
    torch.save({}, channel / "resnet50.pth")
    assert find_pretrained(["resnet50"], {"pretrained": channel}) == channel / "resnet50.pth"


def test_missing_weights_say_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_WEIGHTS_DIR, str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="'pretrained' input channel.*resnet18.pth.*use_pretrained_model=0"):
        resolve_weights(imagenet_need("ResNet-18", ["resnet18"]), {})


def test_read_state_dict_unwraps_and_refuses_non_state_dicts(tmp_path):
    state = net().state_dict()
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    assert set(read_state_dict(tmp_path / "wrapped.pth")) == set(state)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ConfigError, match="list.pth does not hold a state_dict"):
        read_state_dict(tmp_path / "list.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="cannot read pretrained weights junk.pth"):
        read_state_dict(tmp_path / "junk.pth")


def test_load_matching_copies_matching_names_and_shapes():
    source, target = net(), net()
    state = {f"module.{k}": v for k, v in source.state_dict().items()}
    state["1.weight"] = torch.zeros(5, 5)  # wrong shape: left as initialised
    missing = load_matching(target, state, skip=("1.bias",))
    assert missing == ["1.bias", "1.weight"]
    assert torch.equal(target[0].weight, source[0].weight)
    with pytest.raises(ConfigError, match="share no layer names"):
        load_matching(target, {"other": torch.zeros(1)})


def test_model_channel_artifact_from_folder_or_tarball(tmp_path):
    folder = tmp_path / "artifact"
    artifact.save_artifact(folder, net().state_dict(), {"task": "classification"})
    assert model_channel_artifact(folder) == folder
    channel = tmp_path / "model"
    channel.mkdir()
    with tarfile.open(channel / "model.tar.gz", "w:gz") as tar:
        for path in folder.iterdir():
            tar.add(path, arcname=path.name)
    extracted = model_channel_artifact(channel)
    assert extracted is not None and artifact.load_manifest(extracted)["task"] == "classification"
    assert model_channel_artifact(channel) == extracted  # extracted once
    assert model_channel_artifact(None) is None and model_channel_artifact(tmp_path / "absent") is None


def test_unreadable_model_tarball_is_a_config_error(tmp_path):
    channel = tmp_path / "model"
    channel.mkdir()
    (channel / "model.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ConfigError, match="model.tar.gz cannot be extracted"):
        model_channel_artifact(channel)
