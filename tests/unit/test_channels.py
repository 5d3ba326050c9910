"""Channel discovery: inputdataconfig.json names plus data folders, with the usual aliases."""

from __future__ import annotations

from smcv.channels import canonical_config, discover_channels
from smcv.contract import Paths


def test_config_and_folders_with_aliases(tmp_path):
    paths = Paths(tmp_path)
    for name in ("training", "val", "extra"):
        paths.channel_dir(name).mkdir(parents=True)
    channels = discover_channels(paths, {"training": {}, "pretrained": {}})
    assert channels == {"train": paths.channel_dir("training"), "pretrained": paths.channel_dir("pretrained"),
                        "validation": paths.channel_dir("val"), "extra": paths.channel_dir("extra")}


def test_the_builtin_name_wins_over_its_alias(tmp_path):
    paths = Paths(tmp_path)
    for name in ("train", "training"):
        paths.channel_dir(name).mkdir(parents=True)
    channels = discover_channels(paths, {})
    assert channels["train"] == paths.channel_dir("train")
    assert channels["training"] == paths.channel_dir("training")  # kept under its own name, not as 'train'


def test_no_data_folder_means_config_channels_only(tmp_path):
    assert discover_channels(Paths(tmp_path), {"train": {}}) == {"train": Paths(tmp_path).channel_dir("train")}


def test_canonical_config_keys():
    config = canonical_config({"training": {"TrainingInputMode": "Pipe"}, "val_annotation": {"A": 1}})
    assert config == {"train": {"TrainingInputMode": "Pipe"}, "validation_annotation": {"A": 1}}
