"""Shared fixtures: a fake /opt/ml tree (the data makers are in tests/helpers)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from tests.helpers.opt_ml import OptMl

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def opt_ml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OptMl:
    """A fake /opt/ml with SAGEMAKER_BASE_DIR pointing at it."""
    tree = OptMl(tmp_path / "opt_ml")
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tree.base))
    monkeypatch.setenv("SMCV_SPOOL_DIR", str(tmp_path / "spool"))
    return tree
