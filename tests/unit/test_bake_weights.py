"""containers/bake_weights.py against a loopback server: BAKED.txt, SHA-256 refusals, best effort vs required."""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import torch

from smcv.pretrained import TORCHVISION_FILES
from tests.helpers.weights_server import save_torchvision_style

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "containers" / "bake_weights.py"


def bake(dest: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), "--dest", str(dest), "--base-url", url, *args],
                          capture_output=True, text=True)


def baked_lines(dest: Path) -> list[list[str]]:
    return [line.split() for line in (dest / "BAKED.txt").read_text().splitlines() if not line.startswith("#")]


def served_files(folder: Path) -> tuple[Path, str]:
    """One good file (named by its SHA-256) and the name of one whose content does not match its name."""
    good = save_torchvision_style({"conv1.weight": torch.ones(2, 2)}, folder, "resnet18")
    torch.save({"conv1.weight": torch.zeros(2, 2)}, folder / "resnet34-0123abcd.pth")
    return good, "resnet34-0123abcd.pth"


def test_best_effort_bakes_what_it_can_and_records_it(tmp_path, weights_server):
    good, bad = served_files(weights_server.folder)
    dest = tmp_path / "weights"
    result = bake(dest, weights_server.url, good.name, bad, "resnet50-11ad3fa6.pth")
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(good.read_bytes()).hexdigest()
    assert baked_lines(dest) == [[good.name, digest, f"{weights_server.url}/{good.name}"]]
    assert sorted(p.name for p in dest.iterdir()) == ["BAKED.txt", good.name]  # the bad one deleted, no temporaries
    assert re.search(r"resnet34-0123abcd.pth: SHA-256 \w+\.\.\. does not start with 0123abcd.*deleted", result.stderr)
    assert "HTTP Error 404" in result.stderr and f"NOT baked: {bad} resnet50-11ad3fa6.pth" in result.stderr
    assert "baked 1 of 3" in result.stdout


def test_required_mode_fails_when_one_is_missing(tmp_path, weights_server):
    good, bad = served_files(weights_server.folder)
    assert bake(tmp_path / "ok", weights_server.url, "--mode", "required", good.name).returncode == 0
    result = bake(tmp_path / "not", weights_server.url, "--mode", "required", good.name, bad)
    assert result.returncode == 1 and "failing the build" in result.stderr
    assert [line[0] for line in baked_lines(tmp_path / "not")] == [good.name]


def test_unreachable_server_skips_the_rest_and_goes_on(tmp_path):
    result = bake(tmp_path / "weights", "http://127.0.0.1:9/models", "resnet18-f37072fd.pth", "resnet34-b627a593.pth")
    assert result.returncode == 0
    assert "resnet34-b627a593.pth: skipped" in result.stderr and baked_lines(tmp_path / "weights") == []


def test_a_baked_file_is_verified_again(tmp_path, weights_server):
    dest = tmp_path / "weights"
    dest.mkdir()
    (dest / "resnet18-0123abcd.pth").write_bytes(b"damaged")
    result = bake(dest, weights_server.url, "resnet18-0123abcd.pth")
    assert "does not start with 0123abcd" in result.stderr and not (dest / "resnet18-0123abcd.pth").exists()


def test_default_models_are_the_files_smcv_looks_for():
    spec = importlib.util.spec_from_file_location("bake_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    dockerfile = (REPO / "containers" / "Dockerfile").read_text()
    models = re.search(r'ARG BAKE_WEIGHTS_MODELS="([^"]+)"', dockerfile).group(1).split()
    assert sorted(module.file_name(m) for m in models) == sorted(TORCHVISION_FILES.values())
    assert "ARG BAKE_WEIGHTS=1\n" in dockerfile
