"""Fuzz /invocations of the real server (gunicorn, 2 workers) for each task with a tiny real model: hostile
payloads (tests/helpers/fuzzpayloads.py) must never give a 5xx, kill a worker or take over 30 s, and every 4xx
must carry a JSON error message."""

from __future__ import annotations

import collections
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import pytest

from tests.helpers.exportmodels import write_tiny_model
from tests.helpers.figures import report
from tests.helpers.fuzzpayloads import Payload, generate
from tests.helpers.rawhttp import Answer, exchange
from tests.helpers.servers import ping, serving

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 20240611
PAYLOAD_MB = 1  # SAGEMAKER_MAX_PAYLOAD_IN_MB: oversized bodies stay small
READ_TIMEOUT_S = 2  # SMCV_READ_TIMEOUT_S: stalled clients are dropped quickly
ANSWER_LIMIT_S = 30.0  # the contract: no answer takes longer
PARALLEL = 8
SERVER_ENV = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(PAYLOAD_MB),
              "SMCV_READ_TIMEOUT_S": str(READ_TIMEOUT_S), "SMCV_ACCESS_LOG": "0"}
TASKS = ("classification", "detection", "segmentation")
VARIANTS = [pytest.param(200, id="quick"), pytest.param(1000, id="long", marks=pytest.mark.reliability_long)]


def problem(payload: Payload, answer: Answer) -> Optional[str]:
    """What is wrong with this answer to this payload, or None."""
    if answer.seconds > ANSWER_LIMIT_S:
        return f"took {answer.seconds:.1f} s"
    if answer.status is None:
        return None if payload.may_close else f"no answer ({answer.error})"
    if answer.status >= 500:
        return f"{answer.status}: {answer.body[:300]!r}"
    if 400 <= answer.status < 500 and answer.error_message() is None:
        return f"{answer.status} without a JSON error message: {answer.headers} {answer.body[:200]!r}"
    if answer.status == 200 and not answer.body:
        return "200 with an empty body"
    return None


@pytest.mark.parametrize("count", VARIANTS)
@pytest.mark.parametrize("task", TASKS)
def test_fuzz_invocations(tmp_path, task, count):
    payloads = generate(task, count, SEED, PAYLOAD_MB * 1024 * 1024)
    write_tiny_model(task, tmp_path / "ml" / "model")
    with serving(tmp_path / "ml", tmp_path / "server.log", **SERVER_ENV) as server:
        workers_before = sorted(server.workers)
        started = time.monotonic()
        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = list(pool.map(lambda p: exchange(server.port, p.data, timeout_s=ANSWER_LIMIT_S + 5), payloads))
        took = time.monotonic() - started
        workers_after = sorted(server.workers)
        ping_after = ping(server.url, timeout=10)
        log = server.log.read_text()

    problems = [(p.index, p.kind, p.detail, why) for p, a in zip(payloads, answers) if (why := problem(p, a))]
    by_status = collections.Counter(str(a.status) for a in answers)
    by_kind: dict = collections.defaultdict(collections.Counter)
    for p, a in zip(payloads, answers):
        by_kind[p.kind][str(a.status)] += 1
    latencies = sorted(a.seconds for a in answers)
    report({"test": "fuzz", "task": task, "payloads": len(payloads), "seed": SEED, "parallel": PARALLEL,
            "by_status": dict(sorted(by_status.items())),
            "by_kind": {kind: dict(sorted(c.items())) for kind, c in sorted(by_kind.items())},
            "5xx": sum(1 for a in answers if a.status and a.status >= 500), "problems": len(problems),
            "max_latency_s": round(latencies[-1], 3), "p50_latency_s": round(latencies[len(latencies) // 2], 3),
            "worker_deaths": len(set(workers_before) - set(workers_after)), "seconds": round(took, 1)})
    assert not problems, f"{len(problems)} bad answer(s), first 20: {problems[:20]}"
    assert workers_after == workers_before, f"workers changed {workers_before} -> {workers_after}:\n{log[-5000:]}"
    assert ping_after == 200
    assert "Traceback" not in log, log[-5000:]
