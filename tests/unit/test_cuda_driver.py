"""The host driver against the image's CUDA runtime: version parsing, and the decision and message when a GPU is
present but CUDA cannot use it (stubbed driver queries; no GPU needed)."""

from __future__ import annotations

import subprocess

import pytest
import torch

from smcv import cuda_driver, train
from smcv.cuda_driver import CudaFacts, driver_version, required_driver, unusable_gpu_reason
from smcv.errors import ConfigError, UserError

PROC_TEXT = ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
             "GCC version:  gcc version 10.2.1 20210110 (Debian 10.2.1-6)\n")


def fake_smi(stdout: str, returncode: int = 0):
    def run(args, **kwargs):
        assert args[0] == "nvidia-smi"
        return subprocess.CompletedProcess(args, returncode, stdout=stdout, stderr="")
    return run


def missing_smi(args, **kwargs):
    raise FileNotFoundError("nvidia-smi")


def test_driver_version_from_proc_then_nvidia_smi_then_none(tmp_path):
    proc = tmp_path / "version"
    proc.write_text(PROC_TEXT)
    assert driver_version(proc, missing_smi) == "535.104.05"
    assert driver_version(tmp_path / "absent", fake_smi("470.182.03\n470.182.03\n")) == "470.182.03"
    assert driver_version(tmp_path / "absent", fake_smi("", returncode=9)) is None
    assert driver_version(tmp_path / "absent", missing_smi) is None


@pytest.mark.parametrize("runtime, needed", [("13.0", (580, 0)), ("12.8", (525, 60)), ("12.1", (525, 60)),
                                              ("11.8", (450, 80)), (None, None)])
def test_required_driver_per_cuda_major_version(runtime, needed):
    assert required_driver(runtime) == needed


def test_too_old_driver_names_found_needed_and_what_to_do():
    reason = unusable_gpu_reason(CudaFacts("2.14.1+cu130", "13.0", "535.104.05", cuda_available=False))
    assert "535.104.05" in reason and "13.0" in reason and ">= 580.00" in reason
    assert "SMCV_DEVICE=cpu" in reason and "InferenceAmiVersion" in reason


def test_cuda13_image_on_a_535_driver_names_the_cuda12_tag_to_use_instead():
    reason = unusable_gpu_reason(CudaFacts("2.14.1+cu130", "13.0", "535.104.05", cuda_available=False))
    assert "use the CUDA 12 image line instead: smcv-<task>:latest (or VERSION)" in reason
    assert "build_and_push.sh --cuda 12" in reason


def test_a_470_driver_runs_no_line_and_the_message_says_which_driver_the_oldest_needs():
    reason = unusable_gpu_reason(CudaFacts("2.10.0+cu128", "12.8", "470.182.03", cuda_available=False))
    assert "470.182.03" in reason and "needs driver >= 525.60" in reason
    assert "no smcv image line runs on it" in reason and "SMCV_DEVICE=cpu" in reason
    assert "use the CUDA" not in reason


@pytest.mark.parametrize("driver, line", [("470.182.03", None), ("525.60.13", 12), ("535.104.05", 12),
                                          ("550.54.15", 12), ("580.65.06", 13), ("590.10", 13)])
def test_newest_line_a_driver_runs(driver, line):
    assert cuda_driver.tag_for_driver(driver) == line


def test_a_new_enough_driver_that_still_fails_is_reported_as_a_start_failure():
    reason = unusable_gpu_reason(CudaFacts("2.14.1+cu130", "13.0", "580.65.06", cuda_available=False))
    assert "does not start" in reason and "580.65.06" in reason


@pytest.mark.parametrize("facts", [
    CudaFacts("2.14.1+cu130", "13.0", None, cuda_available=False),        # a CPU host: no driver at all
    CudaFacts("2.14.1+cu130", "13.0", "580.65.06", cuda_available=True),  # CUDA works
    CudaFacts("2.14.1+cpu", None, "535.104.05", cuda_available=False),    # a CPU build of torch
])
def test_nothing_to_refuse(facts):
    assert unusable_gpu_reason(facts) is None


def test_describe_shows_torch_runtime_and_driver():
    text = CudaFacts("2.14.1+cu130", "13.0", "535.104.05", False).describe()
    assert text == "torch 2.14.1+cu130, CUDA runtime 13.0, NVIDIA driver 535.104.05 (needs >= 580.00)"


OLD_DRIVER = CudaFacts("2.14.1+cu130", "13.0", "470.182.03", cuda_available=False)


def test_training_refuses_a_gpu_host_it_cannot_use_unless_smcv_device_is_cpu(monkeypatch):
    monkeypatch.delenv("SMCV_DEVICE", raising=False)
    with pytest.raises(ConfigError, match="470.182.03"):
        train.pick_device("ml.g5.xlarge", OLD_DRIVER)
    monkeypatch.setenv("SMCV_DEVICE", "cpu")
    assert train.pick_device("ml.g5.xlarge", OLD_DRIVER) == torch.device("cpu")


def test_serving_refuses_a_gpu_host_it_cannot_use_unless_smcv_device_is_cpu(monkeypatch):
    from smcv.serving import model_holder

    monkeypatch.setattr(model_holder, "cuda_facts", lambda: OLD_DRIVER)
    monkeypatch.delenv("SMCV_DEVICE", raising=False)
    with pytest.raises(UserError, match="needs driver >= 580"):
        model_holder.pick_device(0)
    monkeypatch.setenv("SMCV_DEVICE", "cpu")
    assert model_holder.pick_device(0) == torch.device("cpu")


def test_facts_of_this_process_match_torch():
    facts = cuda_driver.cuda_facts()
    assert facts.torch_version == torch.__version__ and facts.cuda_runtime == torch.version.cuda
    assert facts.cuda_available == torch.cuda.is_available()
