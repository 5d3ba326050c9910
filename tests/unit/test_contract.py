"""The /opt/ml layout and the three config readers, from one base directory."""

from __future__ import annotations

import json

import pytest

from smcv.contract import (BASE_DIR_ENV, Paths, read_hyperparameters, read_input_data_config, read_resource_config,
                           write_failure, write_success)
from smcv.errors import ConfigError


def test_paths_follow_the_base_directory(tmp_path, monkeypatch):
    monkeypatch.setenv(BASE_DIR_ENV, str(tmp_path))
    paths = Paths.from_env()
    assert paths.hyperparameters_file == tmp_path / "input" / "config" / "hyperparameters.json"
    assert paths.channel_dir("train") == tmp_path / "input" / "data" / "train"
    assert paths.pipe_path("train", 3) == tmp_path / "input" / "data" / "train_3"
    assert paths.model_dir == tmp_path / "model" and paths.failure_file == tmp_path / "output" / "failure"
    monkeypatch.delenv(BASE_DIR_ENV)
    assert Paths.from_env().base.as_posix() == "/opt/ml"


def test_checkpoint_dir_from_checkpoint_config(tmp_path):
    paths = Paths(tmp_path)
    assert paths.checkpoint_dir == tmp_path / "checkpoints"
    paths.config_dir.mkdir(parents=True)
    paths.checkpointconfig_file.write_text(json.dumps({"LocalPath": str(tmp_path / "ckpt")}))
    assert paths.checkpoint_dir == tmp_path / "ckpt"


def test_hyperparameters_become_strings(tmp_path):
    paths = Paths(tmp_path)
    assert read_hyperparameters(paths) == {}
    paths.config_dir.mkdir(parents=True)
    paths.hyperparameters_file.write_text(json.dumps({"epochs": "3", "steps": [1, 2], "amp": True}))
    assert read_hyperparameters(paths) == {"epochs": "3", "steps": "[1, 2]", "amp": "true"}


@pytest.mark.parametrize("reader,name", [(read_hyperparameters, "hyperparameters.json"),
                                         (read_input_data_config, "inputdataconfig.json"),
                                         (read_resource_config, "resourceconfig.json")])
def test_bad_config_files_are_config_errors_naming_the_file(tmp_path, reader, name):
    paths = Paths(tmp_path)
    paths.config_dir.mkdir(parents=True)
    (paths.config_dir / name).write_text("{not json")
    with pytest.raises(ConfigError, match=name):
        reader(paths)
    (paths.config_dir / name).write_text("[1, 2]")
    with pytest.raises(ConfigError, match=name):
        reader(paths)


def test_resource_config_defaults_and_ranks(tmp_path):
    paths = Paths(tmp_path)
    single = read_resource_config(paths)
    assert (single.current_host, single.hosts, single.host_rank, single.num_hosts) == ("algo-1", ("algo-1",), 0, 1)
    paths.config_dir.mkdir(parents=True)
    paths.resourceconfig_file.write_text(json.dumps({"current_host": "algo-2", "hosts": ["algo-2", "algo-1"],
                                                     "current_instance_type": "ml.g5.xlarge"}))
    cluster = read_resource_config(paths)
    assert (cluster.hosts, cluster.host_rank, cluster.instance_type) == (("algo-1", "algo-2"), 1, "ml.g5.xlarge")
    paths.resourceconfig_file.write_text(json.dumps({"current_host": "algo-9", "hosts": ["algo-1"]}))
    with pytest.raises(ConfigError, match="algo-9"):
        read_resource_config(paths)


def test_failure_and_success_files(tmp_path):
    paths = Paths(tmp_path)
    write_failure(paths, "  DataError: bad image  \n")
    assert paths.failure_file.read_text() == "DataError: bad image\n"
    write_success(paths)
    assert paths.success_file.exists()
