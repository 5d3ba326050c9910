"""Intra-op CPU threads per process: the CPUs shared evenly by the processes of one host."""

from __future__ import annotations

import logging
import os
from typing import Optional

from smcv.contract import ENV_OMP_THREADS

logger = logging.getLogger("smcv")


def threads_per_process(cpus: int, processes: int, requested: Optional[str] = None) -> int:
    """A positive OMP_NUM_THREADS value when requested, else cpus // processes, and at least 1."""
    if _is_positive_int(requested):
        return int(requested)
    return max(1, cpus // max(1, processes))


def _is_positive_int(text: Optional[str]) -> bool:
    return bool(text and text.strip().isdigit() and int(text) > 0)


def cpu_count() -> int:
    """CPUs this process may run on (its affinity mask, which containers' cpusets narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def export_threads(processes: int, role: str) -> int:
    """Set OMP_NUM_THREADS for this process and its children (kept when already set) and log the choice."""
    cpus = cpu_count()
    requested = os.environ.get(ENV_OMP_THREADS)
    threads = threads_per_process(cpus, processes, requested)
    os.environ[ENV_OMP_THREADS] = str(threads)
    source = f"{ENV_OMP_THREADS} was set" if _is_positive_int(requested) else f"{cpus} CPUs / {processes} {role}(s)"
    logger.info("intra-op CPU threads per %s: %d (%s)", role, threads, source)
    return threads


def apply_torch_threads() -> int:
    """torch.set_num_threads from OMP_NUM_THREADS (export_threads sets it); returns the count."""
    import torch  # heavy: only processes that run models import it

    threads = threads_per_process(cpu_count(), 1, os.environ.get(ENV_OMP_THREADS))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
