"""Fixtures shared by the integration tests: an interpreter with MXNet 1.9.1 for compatibility checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE_MXNET_ENV = REPO / "scripts" / "make_mxnet_env.sh"


def _imports_mxnet(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import mxnet"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="session")
def mxpython() -> str:
    """A python interpreter that can import mxnet 1.9.1 ($SMCV_MXNET_PYTHON, else a venv made on first use)."""
    override = os.environ.get("SMCV_MXNET_PYTHON")
    if override:
        if not _imports_mxnet(override):
            pytest.skip(f"SMCV_MXNET_PYTHON={override} cannot import mxnet")
        return override
    default = Path.home() / ".cache" / "smcv" / "mxnet-venv" / "bin" / "python"
    if _imports_mxnet(str(default)):
        return str(default)
    proc = subprocess.run(["bash", str(MAKE_MXNET_ENV)], capture_output=True, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not _imports_mxnet(lines[-1]):
        pytest.skip(f"could not create the mxnet venv with {MAKE_MXNET_ENV} (offline?): {proc.stderr.strip()[-500:]}")
    return lines[-1]
