"""Progress lines: after the first 10 steps, then at most one per interval, with rates, data wait and ETAs."""

from __future__ import annotations

import re

from smcv.engine.progress import FIRST_LINE_AFTER_STEPS, Progress, format_duration
from tests.unit.engine.test_trainer import make_trainer

LINE = re.compile(r"progress epoch=(\d+)/(\d+) step=(\d+)/(\d+) loss=(\d+\.\d{4}) images/s=(\d+\.\d) "
                  r"data_wait=(\d+)% eta_epoch=(\d+:\d\d:\d\d) eta_job=(\d+:\d\d:\d\d)")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _run_epoch(progress, clock, epoch, steps, wait_s, compute_s):
    progress.start_epoch(epoch)
    for step in range(1, steps + 1):
        clock.now += wait_s
        progress.batch_arrived()
        clock.now += compute_s
        progress.step_done(step, 32, lambda: 0.5)


def test_first_line_after_ten_steps_then_one_per_interval():
    clock, lines = FakeClock(), []
    progress = Progress(30, epochs=3, steps_per_epoch=100, emit=lines.append, clock=clock)
    _run_epoch(progress, clock, 1, 100, wait_s=0.25, compute_s=0.75)  # 1 s per step, a quarter waiting for data
    steps = [int(LINE.fullmatch(line).group(3)) for line in lines]
    assert steps[0] == FIRST_LINE_AFTER_STEPS
    assert steps == [10, 40, 70]  # then every 30 s; none for the last step (the metric line follows)
    first = LINE.fullmatch(lines[0]).groups()
    assert first[:2] == ("1", "3") and first[4] == "0.5000"
    assert float(first[5]) == 32.0 and first[6] == "25"
    assert first[7] == format_duration(90) and first[8] == format_duration(90 + 2 * 100)
    assert not any("\r" in line for line in lines)


def test_job_eta_uses_measured_epoch_time_after_the_first_epoch():
    clock, lines = FakeClock(), []
    progress = Progress(30, epochs=3, steps_per_epoch=20, emit=lines.append, clock=clock)
    _run_epoch(progress, clock, 1, 20, wait_s=0.0, compute_s=1.0)
    clock.now += 40  # validation and checkpointing: the first epoch took 60 s in all
    lines.clear()
    _run_epoch(progress, clock, 2, 20, wait_s=0.0, compute_s=1.0)
    eta_epoch, eta_job = LINE.fullmatch(lines[0]).groups()[7:]
    assert eta_epoch == "0:00:10" and eta_job == format_duration(10 + 60)


def test_interval_zero_turns_the_lines_off():
    clock, lines = FakeClock(), []
    _run_epoch(Progress(0, 1, 50, lines.append, clock), clock, 1, 50, 0.1, 0.1)
    assert lines == []


def test_trainer_prints_progress_lines_with_an_eta(tmp_path):
    trainer, lines = make_trainer(tmp_path, epochs=2, batch_size=1, log_interval_seconds=1e-6)
    trainer.fit()
    progress = [line for line in lines if line.startswith("progress ")]
    assert progress and all(LINE.fullmatch(line) for line in progress)
    assert {LINE.fullmatch(line).group(1) for line in progress} == {"1", "2"}
    assert int(LINE.fullmatch(progress[0]).group(4)) == 16  # 16 samples, batch 1
    assert [line.split(";")[0] for line in lines if line.startswith("#metrics")] == ["#metrics epoch=1",
                                                                                      "#metrics epoch=2"]


def test_an_excluded_step_leaves_the_rate():
    # 10 s for a compiling first step of 32 images, then 10 steps of 32 images at 1 s: the line reports 32 images/s
    clock, lines = FakeClock(), []
    progress = Progress(1, 1, 100, lines.append, clock=clock)
    progress.start_epoch(1)
    progress.batch_arrived()
    clock.now += 10.0
    progress.step_done(1, 32, lambda: 0.5)
    progress.exclude(10.0, 32)
    for step in range(2, FIRST_LINE_AFTER_STEPS + 2):
        progress.batch_arrived()
        clock.now += 1.0
        progress.step_done(step, 32, lambda: 0.5)
    assert lines and float(LINE.match(lines[0]).group(6)) == 32.0
