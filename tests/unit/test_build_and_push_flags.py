"""build_and_push.sh's weights and CUDA-line options, with a stand-in `docker` that records its arguments (no Docker needed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Stand-in docker CLI: logs each call, answers what build_and_push.sh asks.
echo "$*" >> "$FAKE_DOCKER_LOG"
case "$1" in
    buildx|info) exit 0 ;;
    build)
        [ "${!#}" = - ] && cat >/dev/null
        [ -n "${FAKE_BUILD_FAILS:-}" ] && case " $* " in *" --target runtime "*) exit 1 ;; esac
        exit 0 ;;
    image) case "$*" in *Size*) echo 6000000000 ;; *) echo '["sha256:one"]' ;; esac ;;
    create) echo fakecontainer ;;
    cp) [ -n "${FAKE_BAKED+x}" ] || exit 1; printf '%s' "$FAKE_BAKED" > "$3" ;;
    rm) exit 0 ;;
    *) echo "fake docker: unexpected $*" >&2; exit 3 ;;
esac
"""
BAKED = ("# ImageNet weights baked into this image (containers/bake_weights.py): file sha256 source\n"
         "resnet18-f37072fd.pth f37072fd" + "0" * 56 + " https://download.pytorch.org/models/resnet18-f37072fd.pth\n"
         "resnet34-b627a593.pth b627a593" + "0" * 56 + " https://download.pytorch.org/models/resnet34-b627a593.pth\n")


def run_script(tmp_path: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    log = tmp_path / "docker.log"
    full_env = {**os.environ, "DOCKER": str(docker), "FAKE_DOCKER_LOG": str(log), **env}
    result = subprocess.run([str(REPO / "build_and_push.sh"), "--no-push", "--version", "1.0.0-test", *args],
                            capture_output=True, text=True, env=full_env, timeout=120)
    return result, log.read_text().splitlines() if log.exists() else []


def runtime_build(calls: list[str]) -> str:
    return next(c for c in calls if c.startswith("build ") and "--target runtime" in c)


@pytest.mark.parametrize("args, value", [((), "1"), (("--bake-weights",), "1"), (("--no-bake-weights",), "0"),
                                         (("--require-weights",), "required")])
def test_bake_weights_build_arg(tmp_path, args, value):
    result, calls = run_script(tmp_path, *args, FAKE_BAKED=BAKED)
    assert result.returncode == 0, result.stderr
    assert f"--build-arg BAKE_WEIGHTS={value} " in runtime_build(calls)
    if value == "0":
        assert "none baked (--no-bake-weights)" in result.stderr and not any(c.startswith("create") for c in calls)
    else:
        assert "weights baked into /opt/smcv/weights: resnet18-f37072fd.pth resnet34-b627a593.pth" in result.stderr
        assert "create smcv-runtime:1.0.0-test" in calls and "rm fakecontainer" in calls


def test_nothing_baked_is_a_notice_and_the_build_goes_on(tmp_path):
    result, calls = run_script(tmp_path, FAKE_BAKED=BAKED.splitlines(keepends=True)[0])
    assert result.returncode == 0, result.stderr
    assert "NOTICE: no ImageNet weights could be baked" in result.stderr and "--require-weights" in result.stderr
    assert sum(c.startswith("build ") for c in calls) == 4  # runtime + the three task images


def test_required_weights_failure_fails_the_build_and_says_why(tmp_path):
    result, _ = run_script(tmp_path, "--require-weights", FAKE_BUILD_FAILS="1")
    assert result.returncode != 0 and "docker build failed (with --require-weights" in result.stderr


def test_help_names_the_weights_options(tmp_path):
    result, _ = run_script(tmp_path, "--help")
    assert result.returncode == 0
    for option in ("--no-bake-weights", "--require-weights", "--bake-weights"):
        assert option in result.stdout


@pytest.mark.parametrize("args, line, suffix", [((), "12", ""), (("--cuda", "12"), "12", ""),
                                                (("--cuda", "13"), "13", "-cu13")])
def test_cuda_line_build_arg_and_tags(tmp_path, args, line, suffix):
    result, calls = run_script(tmp_path, *args, "--tasks", "detection", FAKE_BAKED=BAKED)
    assert result.returncode == 0, result.stderr
    runtime = runtime_build(calls)
    assert f"--build-arg CUDA={line} " in runtime and f"--tag smcv-runtime:1.0.0-test{suffix} " in runtime
    task_build = next(c for c in calls if c.startswith("build ") and "--target runtime" not in c)
    assert f"--tag smcv-detection:1.0.0-test{suffix} --tag smcv-detection:latest{suffix} " in task_build
    assert f"tagged smcv-detection:1.0.0-test{suffix} and :latest{suffix}" in result.stderr


def test_an_unknown_cuda_line_is_refused_before_any_build(tmp_path):
    result, calls = run_script(tmp_path, "--cuda", "11")
    assert result.returncode != 0 and "--cuda 11: use 12" in result.stderr
    assert not any(c.startswith("build ") for c in calls)
