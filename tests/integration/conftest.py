"""Fixtures shared by the integration tests: an interpreter with MXNet 1.9.1 for compatibility checks (if present)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE_MXNET_ENV = REPO / "scripts" / "make_mxnet_env.sh"
#: where make_mxnet_env.sh puts the venv by default
DEFAULT_MXNET_PYTHON = Path.home() / ".cache" / "smcv" / "mxnet-venv" / "bin" / "python"


def _imports_mxnet(python: str) -> bool:
    try:
        return subprocess.run([python, "-c", "import mxnet"], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="session")
def mxpython() -> str:
    """A python interpreter that can import mxnet 1.9.1: $SMCV_MXNET_PYTHON, else the venv of make_mxnet_env.sh.

    The tests never create that venv themselves (it installs from the package index); scripts/test.sh does."""
    override = os.environ.get("SMCV_MXNET_PYTHON")
    if override:
        if not _imports_mxnet(override):
            pytest.skip(f"SMCV_MXNET_PYTHON={override} cannot import mxnet")
        return override
    if not _imports_mxnet(str(DEFAULT_MXNET_PYTHON)):
        pytest.skip(f"MXNet compatibility tier: no mxnet venv at {DEFAULT_MXNET_PYTHON.parent.parent}; create it "
                    f"with `bash {MAKE_MXNET_ENV.relative_to(REPO)}` (needs the package index; scripts/test.sh runs "
                    f"it) or set SMCV_MXNET_PYTHON to a python that imports mxnet 1.9.1")
    return str(DEFAULT_MXNET_PYTHON)
