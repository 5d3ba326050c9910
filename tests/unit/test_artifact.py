"""Model artifacts: written atomically and readable by a server running as another user."""

from __future__ import annotations

import stat

import torch

from smcv import artifact


def test_model_and_manifest_are_readable_by_other_users(tmp_path):
    artifact.save_artifact(tmp_path, {"w": torch.ones(2)}, {"task": "classification"})
    for name in (artifact.MODEL_FILE, artifact.MANIFEST_FILE):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == 0o644, f"{name} has mode {oct(mode)}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "a temporary file was left behind"
