"""The scripts that take a CUDA line refuse an unknown one before doing any work, and say which lines exist."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_fill_wheelhouse_refuses_an_unknown_cuda_line(tmp_path):
    result = subprocess.run(["bash", str(REPO / "containers" / "fill_wheelhouse.sh"), "--cuda", "14", str(tmp_path / "w")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--cuda 14: use 12 or 13" in result.stderr
    assert not (tmp_path / "w").exists()


def test_setup_venv_refuses_an_unknown_cuda_line_before_touching_the_venv(tmp_path):
    # a copy of the script in an empty checkout: a regression cannot reach the project's own .venv
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "setup_venv.sh").write_text((REPO / "scripts" / "setup_venv.sh").read_text())
    env = {**os.environ, "SMCV_CUDA": "11", "PYTHON": "/nonexistent/python"}
    result = subprocess.run(["bash", str(tmp_path / "scripts" / "setup_venv.sh")], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 2
    assert "SMCV_CUDA=11: no containers/requirements-torch-cu11.txt (use 12 or 13)" in result.stderr
    assert not (tmp_path / ".venv").exists()
