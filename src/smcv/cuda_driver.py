"""The host's NVIDIA driver against the CUDA runtime this image's torch was built for: versions and a clear refusal.

A GPU host whose driver is too old for the image's CUDA runtime makes `torch.cuda.is_available()` quietly false;
without this check a job would train (or an endpoint serve) on the CPU and say nothing.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

PROC_VERSION = Path("/proc/driver/nvidia/version")
#: the oldest Linux driver each CUDA major version runs on (CUDA's minor-version compatibility: any 12.x runtime
#: on >= 525.60.13, any 13.x on >= 580); from NVIDIA's CUDA compatibility tables
MIN_DRIVER = {11: (450, 80), 12: (525, 60), 13: (580, 0)}
#: the image lines build_and_push.sh --cuda builds (CUDA major -> tag suffix); the CUDA 12 line is the default tag
LINE_TAG_SUFFIX = {12: "", 13: "-cu13"}
#: what else can be done about a host the image cannot use
ADVICE = ("or use a host with a newer NVIDIA driver (on SageMaker: an instance family or InferenceAmiVersion whose "
          "driver is new enough; docs/container.md, 'GPU drivers', lists them), or set SMCV_DEVICE=cpu to run on the CPU")


@dataclass(frozen=True)
class CudaFacts:
    """What start-up logs: torch's version and CUDA runtime, the host driver, and whether CUDA started."""

    torch_version: str
    cuda_runtime: Optional[str]
    driver: Optional[str]
    cuda_available: bool

    def describe(self) -> str:
        """One log fragment, e.g. 'torch 2.14.1+cu130, CUDA runtime 13.0, NVIDIA driver 580.65 (needs >= 580.0)'."""
        runtime = f"CUDA runtime {self.cuda_runtime}" if self.cuda_runtime else "no CUDA runtime (CPU build)"
        driver = f"NVIDIA driver {self.driver}" if self.driver else "no NVIDIA driver"
        needed = required_driver(self.cuda_runtime)
        need = f" (needs >= {needed[0]}.{needed[1]:02d})" if needed and self.driver else ""
        return f"torch {self.torch_version}, {runtime}, {driver}{need}"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def required_driver(cuda_runtime: Optional[str]) -> Optional[tuple[int, int]]:
    """The oldest driver (major, minor) for a CUDA runtime version such as '13.0' or '12.8'."""
    if not cuda_runtime:
        return None
    return MIN_DRIVER.get(_version_tuple(cuda_runtime)[0])


def driver_version(proc_file: Path = PROC_VERSION, run: Callable[..., subprocess.CompletedProcess] = subprocess.run
                   ) -> Optional[str]:
    """The host's NVIDIA driver version, from /proc/driver/nvidia/version or nvidia-smi; None without a driver."""
    try:
        match = re.search(r"Kernel Module\s+(\d+\.\d+(?:\.\d+)?)", proc_file.read_text())
        if match:
            return match.group(1)
    except OSError:
        pass
    try:
        answer = run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    first = answer.stdout.strip().splitlines()[0] if answer.returncode == 0 and answer.stdout.strip() else ""
    return first.strip() or None


def cuda_facts() -> CudaFacts:
    """The facts of this process (imports torch)."""
    import torch  # callers already hold torch; kept here so the module imports without it

    return CudaFacts(torch.__version__, torch.version.cuda, driver_version(), torch.cuda.is_available())


def line_tag(cuda_major: int) -> str:
    """How the image line of a CUDA major version is tagged, e.g. 'smcv-<task>:latest-cu13'."""
    return f"smcv-<task>:latest{LINE_TAG_SUFFIX[cuda_major]} (or VERSION{LINE_TAG_SUFFIX[cuda_major]})"


def tag_for_driver(driver: str) -> Optional[int]:
    """The newest image line (CUDA major) a host driver runs, or None when it runs none of them."""
    found = _version_tuple(driver)[:2]
    fitting = [major for major in LINE_TAG_SUFFIX if found >= MIN_DRIVER[major]]
    return max(fitting) if fitting else None


def unusable_gpu_reason(facts: CudaFacts) -> Optional[str]:
    """Why a present GPU cannot be used (driver too old, or CUDA failing to start), or None when all is well."""
    if facts.cuda_available or facts.driver is None or not facts.cuda_runtime:
        return None
    needed = required_driver(facts.cuda_runtime)
    found = _version_tuple(facts.driver)
    if needed and found[:2] < needed:
        line = tag_for_driver(facts.driver)
        if line is not None:
            instead = f"use the CUDA {line} image line instead: {line_tag(line)}, built by build_and_push.sh --cuda {line}; "
        else:
            oldest = min(LINE_TAG_SUFFIX)
            instead = (f"no smcv image line runs on it (the oldest, the CUDA {oldest} line {line_tag(oldest)}, needs "
                       f"driver >= {MIN_DRIVER[oldest][0]}.{MIN_DRIVER[oldest][1]:02d}): ")
        return (f"this host has NVIDIA driver {facts.driver}, but this image's torch {facts.torch_version} needs "
                f"CUDA {facts.cuda_runtime}, which needs driver >= {needed[0]}.{needed[1]:02d}; {instead}{ADVICE}")
    return (f"an NVIDIA driver ({facts.driver}) is present but CUDA {facts.cuda_runtime} does not start (no GPU "
            f"visible to the container, or a driver/runtime mismatch); check the container's GPU access, {ADVICE}")
