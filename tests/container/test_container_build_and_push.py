"""build_and_push.sh end to end against a real registry on loopback (Debian's docker-registry), offline.

The ECR path runs with a stand-in `aws` (tests/container/fake_aws/aws) and --ecr-host pointing at the
loopback registry, so account lookup, repository creation and `docker login` are all exercised.
The images are already built by then (scripts/ci_container.sh), so the builds here are cache hits as long
as SMCV_BUILD_OPTS matches the options of that build.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.container.helpers import REPO, TASKS, docker, docker_cli, free_port

REGISTRY_BIN = shutil.which("docker-registry") or "/usr/bin/docker-registry"
FAKE_AWS_DIR = Path(__file__).parent / "fake_aws"
TEST_VERSION = "9.9.9-test"
PLAIN_VERSION = "9.9.9-plain"
#: its own image names, so that the :latest tags of the images under test are left alone
PUSH_NAME = "smcv-pushtest"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A registry on 127.0.0.1 only (docker treats 127.0.0.0/8 as insecure: plain HTTP is allowed)."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip("docker-registry not installed (apt-get install docker-registry)")
    base = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = base / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: {base / 'data'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
""")
    log = open(base / "registry.log", "w")
    process = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://{host}/v2/", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert process.poll() is None, (base / "registry.log").read_text()
            assert time.monotonic() < deadline, "registry did not start: " + (base / "registry.log").read_text()
            time.sleep(0.2)
        yield host
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        for ref in docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split():
            if ref.startswith((host + "/", PUSH_NAME + "-")):
                docker("rmi", ref, check=False)
        # the pushed layers are several GB; pytest keeps its last three base temp dirs, so drop them now
        shutil.rmtree(base / "data", ignore_errors=True)


def build_and_push(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run build_and_push.sh with the fake aws first on PATH; returns the result and the aws calls made."""
    aws_log = tmp_path / "aws-calls.log"
    env = {**os.environ, "PATH": f"{FAKE_AWS_DIR}{os.pathsep}{os.environ['PATH']}",
           "FAKE_AWS_LOG": str(aws_log), "FAKE_AWS_STATE": str(tmp_path / "aws-state"),
           "DOCKER_CONFIG": str(tmp_path / "docker-config"), "DOCKER": docker_cli()}
    env.pop("AWS_REGION", None)
    env.pop("AWS_DEFAULT_REGION", None)
    opts = shlex.split(os.environ.get("SMCV_BUILD_OPTS", ""))
    result = subprocess.run([str(REPO / "build_and_push.sh"), *opts, *args], capture_output=True, text=True,
                            env=env, timeout=3000)
    calls = aws_log.read_text().splitlines() if aws_log.exists() else []
    return result, calls


def registry_tags(host: str, repository: str) -> list[str]:
    with urllib.request.urlopen(f"http://{host}/v2/{repository}/tags/list", timeout=10) as response:
        return sorted(json.loads(response.read())["tags"] or [])


def test_push_every_task_to_ecr_path(registry, tmp_path):
    """ECR flow (stand-in aws) to the loopback registry: every task, version and latest; then docker pull."""
    result, calls = build_and_push(tmp_path, "--ecr-host", registry, "--region", "eu-west-1",
                                   "--version", TEST_VERSION, "--name", PUSH_NAME)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "aws sts get-caller-identity --query Account --output text" in calls
    for task in TASKS:
        repo = f"{PUSH_NAME}-{task}"
        assert f"aws ecr describe-repositories --region eu-west-1 --repository-names {repo}" in calls
        assert f"aws ecr create-repository --region eu-west-1 --repository-name {repo}" in calls
        assert registry_tags(registry, repo) == [TEST_VERSION, "latest"]
    assert "aws ecr get-login-password --region eu-west-1" in calls
    assert (tmp_path / "docker-config" / "config.json").is_file(), "docker login was not run"

    ref = f"{registry}/{PUSH_NAME}-detection:{TEST_VERSION}"
    local_id = docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip()
    docker("rmi", ref)
    pulled = docker("pull", ref, timeout=1800)
    assert "Downloaded newer image" in pulled.stdout or "Image is up to date" in pulled.stdout, pulled.stdout
    assert docker("image", "inspect", "-f", "{{.Id}}", ref).stdout.strip() == local_id
    env = docker("image", "inspect", "-f", "{{json .Config.Env}}", ref).stdout
    assert "SMCV_TASK=detection" in env


def test_registry_override_makes_no_aws_calls(registry, tmp_path):
    """--registry: push without any AWS call (the other tasks' layers are already there)."""
    result, calls = build_and_push(tmp_path, "--registry", registry, "--tasks", "segmentation",
                                   "--version", PLAIN_VERSION, "--name", PUSH_NAME)
    assert result.returncode == 0, result.stdout + result.stderr
    assert calls == []
    assert PLAIN_VERSION in registry_tags(registry, f"{PUSH_NAME}-segmentation")


def test_no_push_and_bad_arguments(tmp_path):
    """Usage errors are clear and exit non-zero before anything is built."""
    result, calls = build_and_push(tmp_path, "--tasks", "classification,segmentatoin", "--no-push")
    assert result.returncode != 0
    assert "unknown task 'segmentatoin'" in result.stderr
    result, _ = build_and_push(tmp_path, "--frobnicate")
    assert result.returncode != 0 and "unknown argument: --frobnicate" in result.stderr
    assert calls == []
