"""Shared fixtures: a fake /opt/ml tree (the data makers are in tests/helpers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers.opt_ml import OptMl
from tests.helpers.weights_server import WeightsServer, save_torchvision_style, trained_resnet_state

torch.set_num_threads(min(2, os.cpu_count() or 1))


#: a closed port on loopback: a download attempt is refused at once, no test reaches the internet
UNREACHABLE_WEIGHTS_URL = "http://127.0.0.1:9/models"


@pytest.fixture(autouse=True)
def no_weight_downloads(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test: weights downloads go to a closed loopback port and the torch hub cache is a fresh folder."""
    torch_home = tmp_path_factory.mktemp("torch_home")
    monkeypatch.setenv("SMCV_WEIGHTS_URL", UNREACHABLE_WEIGHTS_URL)
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setenv("SMCV_WEIGHTS_DIR", str(torch_home / "no-baked-weights"))
    return torch_home


@pytest.fixture
def opt_ml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OptMl:
    """A fake /opt/ml with SAGEMAKER_BASE_DIR pointing at it."""
    tree = OptMl(tmp_path / "opt_ml")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tree.base))
    monkeypatch.setenv("SMCV_SPOOL_DIR", str(tmp_path / "spool"))
    return tree


@pytest.fixture(scope="session")
def resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet18 state_dict from a few training steps of ours, saved as torchvision names it (resnet18-<sha>.pth)."""
    return save_torchvision_style(trained_resnet_state("resnet18"), tmp_path_factory.mktemp("weights"), "resnet18")


@pytest.fixture
def weights_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A loopback weights server (files go into server.folder), SMCV_WEIGHTS_URL pointing at it; stopped after."""
    server = WeightsServer(tmp_path / "server" / "models").start()
    monkeypatch.setenv("SMCV_WEIGHTS_URL", server.url)
    try:
        yield server
    finally:
        server.stop()
