"""Progress lines that read well in CloudWatch: one plain line at most every N seconds, with rates and ETAs."""

from __future__ import annotations

import time
from typing import Callable

#: the first line comes after this many steps of an epoch (the first steps include warm-up and compilation)
FIRST_LINE_AFTER_STEPS = 10


def format_duration(seconds: float) -> str:
    """H:MM:SS for an ETA (no carriage returns, no bars)."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Emits `progress epoch=E/N step=S/T loss=... images/s=... data_wait=...% eta_epoch=... eta_job=...` lines.

    A line comes after the first FIRST_LINE_AFTER_STEPS steps of an epoch and then at most every `interval_s`
    seconds (0 turns the lines off). The job ETA uses the measured time of whole epochs (validation included) once
    one has finished, before that the step rate of the current epoch.
    """

    def __init__(self, interval_s: float, epochs: int, steps_per_epoch: int, emit: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self.epochs, self.steps, self.emit, self.clock = interval_s, epochs, steps_per_epoch, emit, clock
        self.epoch_seconds: list[float] = []
        self.epoch = 0
        self.epoch_started = self.last_line = self.step_ended = 0.0
        self.data_wait = 0.0
        self.images = 0

    def start_epoch(self, epoch: int) -> None:
        """Reset the per-epoch counters; the previous epoch's duration (if any) feeds the job ETA."""
        now = self.clock()
        if self.epoch:
            self.epoch_seconds.append(now - self.epoch_started)
        self.epoch, self.epoch_started, self.step_ended, self.last_line = epoch, now, now, now
        self.data_wait, self.images = 0.0, 0

    def batch_arrived(self) -> None:
        """Call when the loader handed over a batch: the time since the last step ended was spent waiting for data."""
        self.data_wait += self.clock() - self.step_ended

    def step_done(self, step: int, images: int, mean_loss: Callable[[], float]) -> None:
        """Count one finished step (1-based) of `images` images; emit a line when one is due (mean_loss is lazy)."""
        now = self.clock()
        self.step_ended = now
        self.images += images
        if self.interval_s <= 0 or step < FIRST_LINE_AFTER_STEPS or step == self.steps:
            return
        if step > FIRST_LINE_AFTER_STEPS and now - self.last_line < self.interval_s:
            return
        self.last_line = now
        self.emit(self._line(step, now - self.epoch_started, mean_loss()))

    def exclude(self, seconds: float, images: int) -> None:
        """Leave a step out of the rates (the compiling first step of compile=1): its time and its images."""
        self.epoch_started += seconds
        self.images -= images

    def data_wait_share(self) -> float:
        """The share of the current epoch (up to its last finished step) spent waiting for the data loader."""
        elapsed = self.step_ended - self.epoch_started
        return self.data_wait / elapsed if elapsed > 0 else 0.0

    def _line(self, step: int, elapsed: float, loss: float) -> str:
        per_step = elapsed / step
        eta_epoch = per_step * (self.steps - step)
        per_epoch = sum(self.epoch_seconds) / len(self.epoch_seconds) if self.epoch_seconds else per_step * self.steps
        eta_job = eta_epoch + per_epoch * (self.epochs - self.epoch)
        return (f"progress epoch={self.epoch}/{self.epochs} step={step}/{self.steps} loss={loss:.4f} "
                f"images/s={self.images / max(elapsed, 1e-9):.1f} data_wait={100 * self.data_wait / max(elapsed, 1e-9):.0f}% "
                f"eta_epoch={format_duration(eta_epoch)} eta_job={format_duration(eta_job)}")
