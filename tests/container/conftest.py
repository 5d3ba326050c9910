"""Fixtures for the container tests: Docker, the built images, a fake /opt/ml per test, free ports.

These tests run only with SMCV_CONTAINER_TESTS=1 (scripts/ci_container.sh sets it after building the
images). Settings, all optional:
  SMCV_TEST_IMAGE    classification image to test (default smcv-classification:latest)
  SMCV_IMAGE_NAME    image name prefix of the task images (default smcv)
  DOCKER             docker CLI (default docker)
  SMCV_BUILD_OPTS    extra build_and_push.sh options for the push test, e.g. "--base-image smcv-base:bookworm
                     --ca-bundle /etc/ssl/certs/ca-certificates.crt" (same as the build, so the cache is hit)
  SMCV_SDK_PYTHON    a python with sagemaker<3[local] for the SDK local-mode test (skipped without it)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.container.helpers import ENABLE_ENV, docker, docker_cli, make_opt_ml, run_container


def pytest_collection_modifyitems(config, items):
    """Skip every container test, with the reason, unless enabled and Docker answers."""
    here = Path(__file__).parent
    ours = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    if not ours:
        return
    reason = None
    if os.environ.get(ENABLE_ENV) != "1":
        reason = f"container tests are off: set {ENABLE_ENV}=1 (needs Docker and the built images; see scripts/ci_container.sh)"
    elif shutil.which(docker_cli()) is None:
        reason = f"{ENABLE_ENV}=1 but no docker CLI '{docker_cli()}' on PATH"
    else:
        info = subprocess.run([docker_cli(), "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
        if info.returncode != 0:
            reason = f"{ENABLE_ENV}=1 but the docker daemon does not answer: {info.stderr.strip()[:200]}"
    for item in ours:
        item.add_marker(pytest.mark.container)
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def image_name() -> str:
    return os.environ.get("SMCV_IMAGE_NAME", "smcv")


@pytest.fixture(scope="session")
def image(image_name) -> str:
    """The classification image; a missing image is an error (the tests were asked for)."""
    ref = os.environ.get("SMCV_TEST_IMAGE", f"{image_name}-classification:latest")
    if docker("image", "inspect", ref, check=False).returncode != 0:
        pytest.fail(f"image {ref} not found: build it first (./build_and_push.sh --no-push ...) or set SMCV_TEST_IMAGE")
    return ref


@pytest.fixture
def opt_ml(tmp_path) -> Path:
    """A fake /opt/ml with the sample data, training for one epoch."""
    return make_opt_ml(tmp_path / "opt_ml", epochs=1)


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory, image) -> Path:
    """An /opt/ml tree after one training run with the image (shared by the serving tests)."""
    base = make_opt_ml(tmp_path_factory.mktemp("trained") / "opt_ml", epochs=1)
    result = run_container(image, base, "train")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base / "model" / "manifest.json").is_file()
    return base


@pytest.fixture
def containers():
    """Names of detached containers a test starts; all removed afterwards."""
    started: list[str] = []
    yield started
    for name in started:
        docker("rm", "-f", name, check=False)
