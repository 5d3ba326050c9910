"""Intra-op threads per process from the CPU count, the process count and OMP_NUM_THREADS."""

from __future__ import annotations

import logging

import pytest

from smcv import threads


@pytest.mark.parametrize("cpus, processes, requested, expected", [
    (16, 1, None, 16),   # one worker uses every core
    (16, 4, None, 4),    # four workers share 16 cores
    (16, 3, None, 5),    # 16 // 3, rounded down so the workers never oversubscribe
    (2, 8, None, 1),     # more processes than cores: one thread each, never zero
    (16, 4, "2", 2),     # an explicit OMP_NUM_THREADS wins
    (16, 4, "0", 4),     # ...unless it is not a positive integer
    (16, 4, "many", 4),
])
def test_threads_per_process(cpus, processes, requested, expected):
    assert threads.threads_per_process(cpus, processes, requested) == expected


def test_export_sets_omp_and_logs(monkeypatch, caplog):
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # restored after the test, whatever export_threads sets
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(threads, "cpu_count", lambda: 12)
    with caplog.at_level(logging.INFO, logger="smcv"):
        assert threads.export_threads(3, "worker") == 4
    assert threads.os.environ["OMP_NUM_THREADS"] == "4"
    assert "intra-op CPU threads per worker: 4 (12 CPUs / 3 worker(s))" in caplog.text


def test_apply_torch_threads(monkeypatch):
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert threads.apply_torch_threads() == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
