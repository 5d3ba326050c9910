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


def test_prune_wheelhouse_deletes_only_what_no_lock_pins(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    containers = REPO / "containers"
    kept = ["torch-2.10.0-3-cp311-cp311-manylinux_2_28_x86_64.whl",            # the CUDA 12 pin, with a build tag
            "nvidia_cublas_cu12-12.8.4.1-py3-none-manylinux_2_27_x86_64.whl",  # underscores normalise to the pin
            "README.txt"]                                                       # not a distribution: left alone
    stale = ["torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl",             # the CUDA 13 line's torch
             "nvidia_cublas-13.1.1.3-py3-none-manylinux_2_27_x86_64.whl"]
    sdist_pins = [line.split("==") for line in (containers / "requirements-sdist.txt").read_text().splitlines()
                  if "==" in line and not line.startswith("#")]
    name, version = sdist_pins[0][0], sdist_pins[0][1].split()[0]
    kept.append(f"{name}-{version}.tar.gz")
    stale.append(f"{name}-0.0.1.tar.gz")                                        # an older pin of the same sdist
    for filename in kept + stale:
        (wheelhouse / filename).write_bytes(b"x" * 1000)
    locks = [containers / f for f in ("requirements-torch-cu12.txt", "requirements.txt", "requirements-sdist.txt",
                                      "requirements-build.txt")]
    result = subprocess.run(["python3", str(containers / "prune_wheelhouse.py"), str(wheelhouse), *map(str, locks)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in wheelhouse.iterdir()) == sorted(kept)
    assert f"deleted {len(stale)} file(s)" in result.stdout
